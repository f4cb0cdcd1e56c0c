"""SAM ViT-B/L/H and MobileSAM, as samexporter writes them (one contract for all four).

Encoder ``input_image``: ``[H, W, 3]`` float 0-255 with ``--use-preprocess`` (normalising and
padding inside the graph), else ``[1, 3, 1024, 1024]`` normalised and padded; ->
``image_embeddings [1, 256, 64, 64]``. The image is resized as ``ResizeLongestSide``.

Decoder ``image_embeddings, point_coords [1, N, 2], point_labels [1, N], mask_input
[1, 1, 256, 256], has_mask_input [1], orig_im_size [2]`` -> ``iou_predictions [1, 4]``,
``low_res_masks [1, 4, 256, 256]`` (1 with ``--return-single-mask``). Masks are upscaled from
``low_res_masks`` outside the graph, as ``Sam.postprocess_masks``: the graph's own ``masks``
output crops with ``int()`` and is wrong for most image sizes. A box is two corners labelled
2 and 3, with no padding point; points alone get the ``(0, 0)``/-1 padding point, as
``SamPredictor`` does. Reference coordinates are ``SamPredictor``'s: ``c`` goes to
``c * s + 0.5`` in the 1024 frame, ``s = new / old`` per axis (``ResizeLongestSide``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Dict, Optional, Sequence, Tuple

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
    check_prompt,
)
from .transforms import IMG_SIZE, apply_coords, normalize_and_pad, postprocess_matrices, resize_longest_side
from .transforms import resized_shape as longest_side_shape

_DECODER_INPUTS = {"image_embeddings": 4, "point_coords": 3, "point_labels": 2, "mask_input": 4,
                   "has_mask_input": 1, "orig_im_size": 1}
_OUTPUTS = ["iou_predictions", "low_res_masks"]  # asking for these only skips the graph's own upscale
# The graph also computes its (unused, see above) full-size masks: a small size keeps that cheap.
_GRAPH_MASK_SIZE = np.array([LOW_RES, LOW_RES], np.float32)
# Sam.postprocess_masks as a tiny graph (tools/make_postprocess_graph.py): ~3x faster than numpy.
_POSTPROCESS = Path(__file__).resolve().parent / "graphs" / "postprocess_masks.onnx"


def build_prompt(points: Optional[Sequence[Sequence[float]]], labels: Optional[Sequence[int]],
                 box: Optional[Sequence[float]]) -> Tuple[np.ndarray, np.ndarray]:
    """Points ``[N, 2]`` (x, y) and labels ``[N]`` as the SAM ONNX decoder wants them (before scaling).

    A box becomes two corners labelled 2 and 3. The ``(0, 0)``/-1 padding point
    is added only without a box, as Meta's ONNX example (and SamPredictor) do.
    """
    return _assemble(check_prompt(points, labels, box))


def _assemble(p: Prompt) -> Tuple[np.ndarray, np.ndarray]:
    if p.box is not None:
        return np.concatenate([p.points, p.box.reshape(2, 2)]), np.concatenate([p.labels, [2.0, 3.0]])
    return np.concatenate([p.points, [[0.0, 0.0]]]), np.concatenate([p.labels, [-1.0]])


class SamEncoder(FamilyEncoder):
    outputs: ClassVar[Dict[str, str]] = {"image_embeddings": "image_embeddings"}

    def __init__(self, family: Family, path: str, session: Any) -> None:
        super().__init__(family, path, session)
        ins, _ = ox.signature(session)
        self.preprocess_in_graph = ins["input_image"].rank == 3

    def prepare(self, image: np.ndarray) -> Tuple[Dict[str, np.ndarray], Shape]:
        resized = resize_longest_side(image, IMG_SIZE)
        feed = resized.astype(np.float32) if self.preprocess_in_graph else normalize_and_pad(resized)
        return {"input_image": feed}, (int(resized.shape[0]), int(resized.shape[1]))


class SamDecoder(FamilyDecoder):
    def __init__(self, family: Family, path: str, session: Any, threads: Optional[int]) -> None:
        super().__init__(family, path, session)
        self._postprocess = ox.open_session(str(_POSTPROCESS), "mask post-processing", threads)

    def coord_scale(self, original: Shape) -> Tuple[float, float]:
        new_h, new_w = longest_side_shape(*original)
        return new_w / original[1], new_h / original[0]

    def _feed(self, bundle: ImageEmbedding, mask: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
        return {
            "image_embeddings": bundle.embeddings,
            "mask_input": mask if mask is not None else np.zeros((1, 1, LOW_RES, LOW_RES), np.float32),
            "has_mask_input": np.array([0.0 if mask is None else 1.0], np.float32),
            "orig_im_size": _GRAPH_MASK_SIZE,
        }

    def decode(self, bundle: ImageEmbedding, prompt: Prompt, mask: Optional[np.ndarray],
               multimask: bool) -> Tuple[np.ndarray, np.ndarray]:
        coords, labels = _assemble(prompt)
        feed = self._feed(bundle, mask)
        feed["point_coords"] = apply_coords(coords, bundle.original_size)[None].astype(np.float32)
        feed["point_labels"] = labels[None].astype(np.float32)
        scores, low_res = self.session.run(_OUTPUTS, feed)
        scores, low_res = scores[0], low_res[0]
        if low_res.shape[0] > 1:  # index 0 is the single-mask output, 1..3 the multimask ones
            pick = slice(1, None) if multimask else slice(0, 1)
            scores, low_res = scores[pick], low_res[pick]
        return scores, low_res

    def upscale(self, low_res: np.ndarray, bundle: ImageEmbedding) -> np.ndarray:
        return self._postprocess.run(["masks"], {
            "low_res_masks": low_res,
            "input_size": np.array(bundle.input_size, np.int64),
            "original_size": np.array(bundle.original_size, np.int64),
        })[0]

    def matrices(self, original: Shape, input_size: Shape) -> Matrices:
        return postprocess_matrices(tuple(input_size), tuple(original))

    def point_runner(self, bundle: ImageEmbedding) -> PointRunner:
        self.check_bundle(bundle)
        run, size = self.session.bound_runner(self._feed(bundle, None), _OUTPUTS), bundle.original_size
        labels = np.array([[1.0, -1.0]], np.float32)

        def decode(point: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
            coords = np.array([[point[0], point[1]], [0.0, 0.0]], np.float64)
            scores, low_res = run({"point_coords": apply_coords(coords, size)[None].astype(np.float32),
                                   "point_labels": labels})
            multi = slice(1, None) if low_res.shape[1] > 1 else slice(0, 1)
            return scores[0, multi], low_res[0, multi]

        return PointRunner(decode, self.matrices(bundle.original_size, bundle.input_size))


class Sam(Family):
    name = "sam"
    title = "SAM / MobileSAM"
    bundle_shapes: ClassVar[Dict[str, Tuple[int, ...]]] = {"image_embeddings": EMBEDDING_SHAPE}
    encoder_hint = "input input_image (rank 3 or 4) -> image_embeddings (samexporter export_encoder)"
    decoder_hint = ("inputs image_embeddings, point_coords, point_labels, mask_input, has_mask_input, "
                    "orig_im_size -> iou_predictions, low_res_masks (samexporter export_decoder)")

    def role(self, inputs: Dict[str, ox.TensorSpec], outputs: Dict[str, ox.TensorSpec]) -> Optional[str]:
        ranks = {k: v.rank for k, v in inputs.items()}
        out = {k: v.rank for k, v in outputs.items()}
        if set(ranks) == {"input_image"} and ranks["input_image"] in (3, 4) and out.get("image_embeddings") == 4:
            return "encoder"
        if ranks == _DECODER_INPUTS and out.get("iou_predictions") == 2 and out.get("low_res_masks") == 4:
            return "decoder"
        return None

    def encoder(self, path: str, session: Any) -> FamilyEncoder:
        return SamEncoder(self, path, session)

    def decoder(self, path: str, session: Any, threads: Optional[int]) -> FamilyDecoder:
        return SamDecoder(self, path, session, threads)
