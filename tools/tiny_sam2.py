"""Tiny random-weight SAM 2.1 with the ONNX signature of every real SAM 2.1 size.

The model is sam2's own SAM2Base, built by sam2's own build_sam2 from
tools/sam2_configs/tiny_sam2.1.yaml (a copy of samexporter's sam2.1_hiera_t.yaml with tiny
Hiera dims). SAM2Base hard-codes its mask decoder (TwoWayTransformer depth 2, MLP 2048);
TinySAM2Base swaps in the same sam2 MaskDecoder class with a one-block transformer so the
committed decoder stays a few MB. Channel counts that reach the ONNX signature are
unchanged: image_embed 256 (FpnNeck d_model), high_res_feats_0 32 and _1 64 (the decoder's
conv_s0 / conv_s1, transformer_dim // 8 and // 4).

export_with_samexporter() runs samexporter.export_sam2's own ``__main__`` (its dummy
inputs, torch.onnx.utils.export arguments, names and dynamic axes), with only sam2's
build_sam2 pointed at the tiny config, as tools/tiny_sam.register() does for SAM 1.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import sys
from unittest import mock

import sam2.build_sam
import torch
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.transformer import TwoWayTransformer
from sam2.modeling.sam2_base import SAM2Base

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sam2_configs")
CONFIG = "tiny_sam2.1.yaml"
REAL_BUILD = sam2.build_sam.build_sam2
DECODER = dict(depth=1, mlp_dim=64, num_heads=8, attention_downsample_rate=8, iou_head_hidden_dim=32)


class TinySAM2Base(SAM2Base):
    """SAM2Base whose SAM mask decoder has one small two-way block (same class, same I/O)."""

    def _build_sam_heads(self):
        super()._build_sam_heads()
        real = self.sam_mask_decoder
        self.sam_mask_decoder = MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=DECODER["depth"], embedding_dim=self.sam_prompt_embed_dim,
                mlp_dim=DECODER["mlp_dim"], num_heads=DECODER["num_heads"],
                attention_downsample_rate=DECODER["attention_downsample_rate"],
            ),
            transformer_dim=self.sam_prompt_embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=DECODER["iou_head_hidden_dim"],
            use_high_res_features=self.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=self.iou_prediction_use_sigmoid,
            pred_obj_scores=self.pred_obj_scores,
            pred_obj_scores_mlp=self.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=self.use_multimask_token_for_obj_ptr,
            dynamic_multimask_via_stability=real.dynamic_multimask_via_stability,
            dynamic_multimask_stability_delta=real.dynamic_multimask_stability_delta,
            dynamic_multimask_stability_thresh=real.dynamic_multimask_stability_thresh,
        )


def build_tiny_sam2(checkpoint: str | None = None, seed: int = 0) -> SAM2Base:
    """sam2.build_sam.build_sam2 on the tiny config (eval mode, CPU, sam2's post-processing
    overrides: dynamic multimask fallback via stability). Random weights from ``seed`` unless
    a checkpoint ({"model": state_dict}) is given."""
    GlobalHydra.instance().clear()
    torch.manual_seed(seed)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.2"):
        return REAL_BUILD(CONFIG, checkpoint, device="cpu")


def save_checkpoint(model: SAM2Base, path: str) -> None:
    torch.save({"model": model.state_dict()}, path)


def export_with_samexporter(checkpoint: str, encoder_out: str, decoder_out: str) -> None:
    """``python -m samexporter.export_sam2`` on the tiny checkpoint (opset 18, no simplify)."""

    def tiny_build(config_file, ckpt_path=None, device="cpu", **_):
        assert config_file == "sam2.1/sam2.1_hiera_t.yaml", config_file
        return build_tiny_sam2(ckpt_path)

    argv = ["export_sam2", "--checkpoint", checkpoint, "--model_type", "sam2.1_hiera_tiny",
            "--output_encoder", encoder_out, "--output_decoder", decoder_out]
    sys.modules.pop("samexporter.export_sam2", None)
    with mock.patch.object(sam2.build_sam, "build_sam2", tiny_build), \
            mock.patch.object(sys, "argv", argv), contextlib.redirect_stdout(io.StringIO()):
        runpy.run_module("samexporter.export_sam2", run_name="__main__")
