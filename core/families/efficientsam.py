"""EfficientSAM-Ti and -S, as the official ``export_to_onnx.py`` (yformer/EfficientSAM) writes them.

Encoder ``batched_images [B, 3, H, W]`` float RGB 0..1 (``ToTensor``) -> ``image_embeddings
[B, 256, 64, 64]``; the graph resizes to 1024 x 1024 (bilinear, aspect not kept) and
normalises itself.

Decoder ``image_embeddings, batched_point_coords [1, Q, N, 2]`` (original pixels),
``batched_point_labels [1, Q, N]``, ``orig_im_size`` int64 ``[2]`` -> ``output_masks
[1, Q, 3, h, w]``, ``iou_predictions [1, Q, 3]`` and an unnamed ``[Q, 3, 256, 256]`` output,
the low-res logits. The graph scales coordinates by ``1024 / W`` and ``1024 / H`` (from
``orig_im_size``), adds 0.5 and pads the prompt to 6 points with label -1; it takes no mask
input. A box is two corners labelled 2 and 3, before the points. Masks are upscaled from the
low-res logits as ``EfficientSam.predict_masks`` does: bicubic, align_corners=False, to the
original size, then ``logit >= 0`` as upstream's example. Reference coordinates are ``predict_masks``': ``c`` goes to
``c * 1024 / W + 0.5``. ``multimask=False`` gives the best of the three by score.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from . import onnx_session as ox
from .base import (
    EMBEDDING_SHAPE,
    LOW_RES,
    Family,
    FamilyDecoder,
    FamilyEncoder,
    ImageEmbedding,
    Matrices,
    PointRunner,
    Prompt,
    PromptError,
    Shape,
)
from .transforms import IMG_SIZE, BandedUpscale, bicubic_matrix

MAX_POINTS = 6  # the decoder keeps the first 6 prompt points (a box counts 2)
_DECODER_INPUTS = {"image_embeddings": 4, "batched_point_coords": 4, "batched_point_labels": 3, "orig_im_size": 1}
# The graph upscales to orig_im_size itself; a 256 x 256 "original" makes that an identity and
# the coordinates are scaled to match (see EfficientSamDecoder._frame).
_GRAPH_SIZE = np.array([LOW_RES, LOW_RES], np.int64)


@lru_cache(maxsize=16)
def _bicubic(original: Shape) -> BandedUpscale:
    """The bicubic upscale of low-res logits to ``original`` (onnxruntime's cubic Resize is 60x slower)."""
    h, w = original
    return BandedUpscale(bicubic_matrix(LOW_RES, h).astype(np.float32), bicubic_matrix(LOW_RES, w).astype(np.float32))


class EfficientSamEncoder(FamilyEncoder):
    outputs: ClassVar[Dict[str, str]] = {"image_embeddings": "image_embeddings"}
    preprocess_in_graph = True

    def prepare(self, image: np.ndarray) -> Tuple[Dict[str, np.ndarray], Shape]:
        x = (image.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)[None]
        return {"batched_images": np.ascontiguousarray(x)}, (IMG_SIZE, IMG_SIZE)


class EfficientSamDecoder(FamilyDecoder):
    def __init__(self, family: Family, path: str, session: Any, threads: Optional[int]) -> None:
        super().__init__(family, path, session)
        # The low-res logits are the third output, named by the exporter ("onnx::Shape_1316"...).
        self._outputs = ["iou_predictions", session.get_outputs()[2].name]

    def coord_scale(self, original: Shape) -> Tuple[float, float]:
        return IMG_SIZE / original[1], IMG_SIZE / original[0]

    @staticmethod
    def _frame(coords: np.ndarray, original: Shape) -> np.ndarray:
        """Original pixels -> what the graph, told the image is 256 x 256, scales to the same place."""
        h, w = original
        return (np.asarray(coords, np.float64) * (LOW_RES / w, LOW_RES / h))[None, None].astype(np.float32)

    def _run(self, bundle: ImageEmbedding, coords: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        scores, low_res = self.session.run(self._outputs, {
            "image_embeddings": bundle.embeddings,
            "batched_point_coords": self._frame(coords, bundle.original_size),
            "batched_point_labels": labels[None, None].astype(np.float32),
            "orig_im_size": _GRAPH_SIZE,
        })
        return scores.reshape(-1), low_res.reshape(-1, LOW_RES, LOW_RES)

    def decode(self, bundle: ImageEmbedding, prompt: Prompt, mask: Optional[np.ndarray],
               multimask: bool) -> Tuple[np.ndarray, np.ndarray]:
        coords, labels = prompt.points, prompt.labels
        if prompt.box is not None:
            coords = np.concatenate([prompt.box.reshape(2, 2), coords])
            labels = np.concatenate([[2.0, 3.0], labels])
        if coords.shape[0] > MAX_POINTS:
            raise PromptError(f"EfficientSAM takes at most {MAX_POINTS} prompt points (a box counts as 2), got "
                              f"{coords.shape[0]}: remove some points")
        scores, low_res = self._run(bundle, coords, labels)
        if not multimask:
            best = int(np.argmax(scores))
            scores, low_res = scores[best : best + 1], low_res[best : best + 1]
        return scores, low_res

    def upscale(self, low_res: np.ndarray, bundle: ImageEmbedding) -> np.ndarray:
        return _bicubic(tuple(bundle.original_size))(low_res) >= 0.0

    def matrices(self, original: Shape, input_size: Shape) -> Matrices:
        h, w = original
        return bicubic_matrix(LOW_RES, h).astype(np.float32), bicubic_matrix(LOW_RES, w).astype(np.float32)

    def point_runner(self, bundle: ImageEmbedding) -> PointRunner:
        self.check_bundle(bundle)
        run = self.session.bound_runner({"image_embeddings": bundle.embeddings, "orig_im_size": _GRAPH_SIZE},
                                        self._outputs)
        labels, size = np.ones((1, 1, 1), np.float32), bundle.original_size

        def decode(point: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
            scores, low_res = run({"batched_point_coords": self._frame(np.reshape(point, (1, 2)), size),
                                   "batched_point_labels": labels})
            return scores.reshape(-1), low_res.reshape(-1, LOW_RES, LOW_RES)

        return PointRunner(decode, self.matrices(bundle.original_size, bundle.input_size))


class EfficientSam(Family):
    name = "efficientsam"
    title = "EfficientSAM"
    bundle_shapes: ClassVar[Dict[str, Tuple[int, ...]]] = {"image_embeddings": EMBEDDING_SHAPE}
    encoder_hint = "input batched_images (rank 4) -> image_embeddings (EfficientSAM export_to_onnx.py)"
    decoder_hint = ("inputs image_embeddings, batched_point_coords, batched_point_labels, orig_im_size -> "
                    "output_masks, iou_predictions (EfficientSAM export_to_onnx.py)")

    def role(self, inputs: Dict[str, ox.TensorSpec], outputs: Dict[str, ox.TensorSpec]) -> Optional[str]:
        ranks = {k: v.rank for k, v in inputs.items()}
        out = {k: v.rank for k, v in outputs.items()}
        if ranks == {"batched_images": 4} and out.get("image_embeddings") == 4:
            return "encoder"
        others = [r for k, r in out.items() if k not in ("output_masks", "iou_predictions")]
        if ranks == _DECODER_INPUTS and out.get("output_masks") == 5 and out.get("iou_predictions") == 3 \
                and others == [4]:
            return "decoder"
        return None

    def encoder(self, path: str, session: Any) -> FamilyEncoder:
        return EfficientSamEncoder(self, path, session)

    def decoder(self, path: str, session: Any, threads: Optional[int]) -> FamilyDecoder:
        return EfficientSamDecoder(self, path, session, threads)
