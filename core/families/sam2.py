"""SAM 2 and 2.1 (tiny, small, base+, large), as samexporter's ``export_sam2`` writes them.

Encoder ``image [1, 3, 1024, 1024]`` -> ``high_res_feats_0 [1, 32, 256, 256]``,
``high_res_feats_1 [1, 64, 128, 128]``, ``image_embed [1, 256, 64, 64]`` (the high-res
projections and ``no_mem_embed`` are inside the graph). The image is prepared as
``SAM2ImagePredictor`` does (``SAM2Transforms``): RGB / 255, resized to exactly 1024 x 1024
(aspect not kept, antialiased bilinear), ImageNet mean and std.

Decoder: those three plus ``point_coords [1, N, 2]`` (1024 frame), ``point_labels [1, N]``,
``mask_input [1, 1, 256, 256]``, ``has_mask_input [1]`` -> ``masks [1, 3, 256, 256]`` low-res
logits of the three multimask tokens, ``iou_predictions [1, 3]``. The graph adds 0.5 to the
coordinates, appends the ``(0, 0)``/-1 padding point (also after a box) and normalises; a box
is two corners labelled 2 and 3, put before the points as ``SAM2ImagePredictor`` does. The
export has no single-mask token: ``multimask=False`` gives the best of the three by score.
Reference coordinates are ``SAM2ImagePredictor``'s: ``c`` goes to ``c * 1024 / W + 0.5``
(``y``: ``/ H``). Masks: one bilinear step from 256 x 256 to the original size, threshold 0.
"""

from __future__ import annotations

from pathlib import Path
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
    Shape,
)
from .transforms import IMG_SIZE, bilinear_matrix, resize_float

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
_FEATS = {"high_res_feats_0": (1, 32, 256, 256), "high_res_feats_1": (1, 64, 128, 128)}
_DECODER_INPUTS = {"image_embed": 4, "high_res_feats_0": 4, "high_res_feats_1": 4, "point_coords": 3,
                   "point_labels": 2, "mask_input": 4, "has_mask_input": 1}
_OUTPUTS = ["iou_predictions", "masks"]
_RESIZE = Path(__file__).resolve().parent / "graphs" / "resize_masks.onnx"


def preprocess(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> ``[1, 3, 1024, 1024]`` float32, as ``SAM2Transforms``."""
    x = resize_float(image.astype(np.float32) / np.float32(255.0), (IMG_SIZE, IMG_SIZE))
    return np.ascontiguousarray(((x - MEAN) / STD).transpose(2, 0, 1)[None], np.float32)


class Sam2Encoder(FamilyEncoder):
    outputs: ClassVar[Dict[str, str]] = {"image_embed": "image_embeddings", "high_res_feats_0": "high_res_feats_0",
               "high_res_feats_1": "high_res_feats_1"}

    def prepare(self, image: np.ndarray) -> Tuple[Dict[str, np.ndarray], Shape]:
        return {"image": preprocess(image)}, (IMG_SIZE, IMG_SIZE)


class Sam2Decoder(FamilyDecoder):
    def __init__(self, family: Family, path: str, session: Any, threads: Optional[int]) -> None:
        super().__init__(family, path, session)
        self._resize = ox.open_session(str(_RESIZE), "mask post-processing", threads)

    def coord_scale(self, original: Shape) -> Tuple[float, float]:
        return IMG_SIZE / original[1], IMG_SIZE / original[0]

    @staticmethod
    def _feed(bundle: ImageEmbedding, mask: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
        return {
            "image_embed": bundle.embeddings,
            "high_res_feats_0": bundle.extras["high_res_feats_0"],
            "high_res_feats_1": bundle.extras["high_res_feats_1"],
            "mask_input": mask if mask is not None else np.zeros((1, 1, LOW_RES, LOW_RES), np.float32),
            "has_mask_input": np.array([0.0 if mask is None else 1.0], np.float32),
        }

    def _frame(self, coords: np.ndarray, original: Shape) -> np.ndarray:
        sx, sy = self.coord_scale(original)
        return (np.asarray(coords, np.float64) * (sx, sy))[None].astype(np.float32)

    def decode(self, bundle: ImageEmbedding, prompt: Prompt, mask: Optional[np.ndarray],
               multimask: bool) -> Tuple[np.ndarray, np.ndarray]:
        coords, labels = prompt.points, prompt.labels
        if prompt.box is not None:
            coords = np.concatenate([prompt.box.reshape(2, 2), coords])
            labels = np.concatenate([[2.0, 3.0], labels])
        feed = self._feed(bundle, mask)
        feed["point_coords"] = self._frame(coords, bundle.original_size)
        feed["point_labels"] = labels[None].astype(np.float32)
        scores, low_res = self.session.run(_OUTPUTS, feed)
        scores, low_res = scores[0], low_res[0]
        if not multimask:
            best = int(np.argmax(scores))
            scores, low_res = scores[best : best + 1], low_res[best : best + 1]
        return scores, low_res

    def upscale(self, low_res: np.ndarray, bundle: ImageEmbedding) -> np.ndarray:
        return self._resize.run(["masks"], {
            "low_res_masks": low_res, "original_size": np.array(bundle.original_size, np.int64)})[0]

    def matrices(self, original: Shape, input_size: Shape) -> Matrices:
        return (bilinear_matrix(LOW_RES, original[0]).astype(np.float32),
                bilinear_matrix(LOW_RES, original[1]).astype(np.float32))

    def point_runner(self, bundle: ImageEmbedding) -> PointRunner:
        self.check_bundle(bundle)
        run, size = self.session.bound_runner(self._feed(bundle, None), _OUTPUTS), bundle.original_size
        labels = np.ones((1, 1), np.float32)

        def decode(point: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
            scores, low_res = run({"point_coords": self._frame(np.reshape(point, (1, 2)), size),
                                   "point_labels": labels})
            return scores[0], low_res[0]

        return PointRunner(decode, self.matrices(bundle.original_size, bundle.input_size))


class Sam2(Family):
    name = "sam2"
    title = "SAM 2 / 2.1"
    bundle_shapes: ClassVar[Dict[str, Tuple[int, ...]]] = {"image_embeddings": EMBEDDING_SHAPE, **_FEATS}
    encoder_hint = "input image (rank 4) -> high_res_feats_0, high_res_feats_1, image_embed (samexporter export_sam2)"
    decoder_hint = ("inputs image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels, "
                    "mask_input, has_mask_input -> masks, iou_predictions (samexporter export_sam2)")

    def role(self, inputs: Dict[str, ox.TensorSpec], outputs: Dict[str, ox.TensorSpec]) -> Optional[str]:
        ranks = {k: v.rank for k, v in inputs.items()}
        out = {k: v.rank for k, v in outputs.items()}
        if ranks == {"image": 4} and all(out.get(k) == 4 for k in ("image_embed", *_FEATS)):
            return "encoder"
        if ranks == _DECODER_INPUTS and out.get("masks") == 4 and out.get("iou_predictions") == 2:
            return "decoder"
        return None

    def encoder(self, path: str, session: Any) -> FamilyEncoder:
        return Sam2Encoder(self, path, session)

    def decoder(self, path: str, session: Any, threads: Optional[int]) -> FamilyDecoder:
        return Sam2Decoder(self, path, session, threads)
