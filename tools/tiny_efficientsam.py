"""Tiny random-weight EfficientSAM from a local checkout of yformer/EfficientSAM.

EfficientSAM is not on PyPI (PyPI's "efficientsam" is EfficientViT-SAM, another model), so
the generator imports the user's checkout (``--efficientsam-repo``): its ``efficient_sam``
package for the model and reference predictor, its ``export_to_onnx.py`` / ``onnx_models.py``
for the export. No EfficientSAM code is kept in this repository.

build_tiny_efficient_sam() mirrors upstream's ``build_efficient_sam`` (EfficientSAM-Ti is
``build_efficient_sam(192, 3)``) with the official classes and settings, only the encoder
and decoder dims shrunk. export_with_official_exporter() calls upstream's
``export_onnx_esam_encoder`` / ``export_onnx_esam_decoder`` with torch.onnx.export swapped
for the legacy torch.onnx.utils.export: torch 2.13's default (dynamo) exporter fails on them.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from unittest import mock

import torch
from torch import nn

NEEDED = ("efficient_sam/efficient_sam.py", "efficient_sam/efficient_sam_decoder.py",
          "efficient_sam/efficient_sam_encoder.py", "efficient_sam/two_way_transformer.py",
          "onnx_models.py", "export_to_onnx.py")
# upstream Ti: patch dim 192, 3 heads, depth 12; decoder depth 2, MLP 2048, IoU head 256, downsample 2
TINY = dict(patch_embed_dim=16, num_heads=2, depth=2, decoder_depth=1, decoder_mlp_dim=64,
            iou_head_hidden_dim=32, attention_downsample_rate=8)


def use_checkout(repo: str) -> None:
    """Put a yformer/EfficientSAM checkout first on sys.path (it is imported from its root)."""
    missing = [p for p in NEEDED if not os.path.isfile(os.path.join(repo, p))]
    if missing:
        sys.exit(f"{repo} is not a checkout of yformer/EfficientSAM: missing {', '.join(missing)}")
    sys.path.insert(0, os.path.abspath(repo))


def build_tiny_efficient_sam(seed: int = 0, full_size: bool = False):
    """EfficientSam in eval mode with random weights from ``seed``; ``full_size`` gives the
    real Ti architecture (upstream's build_efficient_sam(192, 3) without a checkpoint)."""
    from efficient_sam.efficient_sam import EfficientSam, build_efficient_sam
    from efficient_sam.efficient_sam_decoder import MaskDecoder, PromptEncoder
    from efficient_sam.efficient_sam_encoder import ImageEncoderViT
    from efficient_sam.two_way_transformer import TwoWayTransformer

    torch.manual_seed(seed)
    if full_size:
        return build_efficient_sam(encoder_patch_embed_dim=192, encoder_num_heads=3).eval()
    t = TINY
    image_encoder = ImageEncoderViT(
        img_size=1024, patch_size=16, in_chans=3, patch_embed_dim=t["patch_embed_dim"],
        normalization_type="layer_norm", depth=t["depth"], num_heads=t["num_heads"], mlp_ratio=4.0,
        neck_dims=[256, 256], act_layer=nn.GELU,
    )
    dim, grid = image_encoder.transformer_output_dim, image_encoder.image_embedding_size
    sam = EfficientSam(
        image_encoder=image_encoder,
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid), input_image_size=(1024, 1024)),
        decoder_max_num_input_points=6,
        mask_decoder=MaskDecoder(
            transformer_dim=dim,
            transformer=TwoWayTransformer(
                depth=t["decoder_depth"], embedding_dim=dim, num_heads=8, mlp_dim=t["decoder_mlp_dim"],
                activation=nn.GELU, normalize_before_activation=False,
                attention_downsample_rate=t["attention_downsample_rate"],
            ),
            num_multimask_outputs=3, activation=nn.GELU, normalization_type="layer_norm",
            normalize_before_activation=False, iou_head_depth=3 - 1,
            iou_head_hidden_dim=t["iou_head_hidden_dim"], upscaling_layer_dims=[64, 32],
        ),
        pixel_mean=[0.485, 0.456, 0.406],
        pixel_std=[0.229, 0.224, 0.225],
    )
    return sam.eval()


def export_with_official_exporter(model, encoder_out: str, decoder_out: str) -> None:
    """Upstream's export_onnx_esam_encoder / _decoder (opset 17, their dummy inputs, names and
    dynamic axes, their ONNX Runtime smoke run) through the legacy exporter."""
    import export_to_onnx

    with mock.patch.object(torch.onnx, "export", torch.onnx.utils.export), \
            contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        export_to_onnx.export_onnx_esam_encoder(model=model, output=encoder_out)
        export_to_onnx.export_onnx_esam_decoder(model=model, output=decoder_out)
