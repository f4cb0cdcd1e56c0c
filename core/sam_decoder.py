"""SAM prompt decoder (the light, per-click stage) on ONNX Runtime.

Masks are taken from ``low_res_masks`` and upscaled outside the graph: the
exported graph's own ``masks`` output crops with ``int()`` and is wrong for
most image sizes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from . import onnx_session as ox
from .errors import SegmentationError
from .sam_encoder import EMBEDDING_SHAPE, ImageEmbedding
from .transforms import LOW_RES, apply_coords

_INPUTS = [
    ox.TensorSpec("image_embeddings", 4),
    ox.TensorSpec("point_coords", 3),
    ox.TensorSpec("point_labels", 2),
    ox.TensorSpec("mask_input", 4),
    ox.TensorSpec("has_mask_input", 1),
    ox.TensorSpec("orig_im_size", 1),
]
_OUTPUTS = [ox.TensorSpec("iou_predictions", 2), ox.TensorSpec("low_res_masks", 4)]
_ENCODER_HINT = "This looks like a SAM encoder; choose the decoder file."
# The graph also computes its (unused, see above) full-size masks: a small size keeps that cheap.
_GRAPH_MASK_SIZE = np.array([LOW_RES, LOW_RES], np.float32)
# Sam.postprocess_masks as a tiny graph (tools/make_postprocess_graph.py): ~3x faster than numpy.
_POSTPROCESS = Path(__file__).parent / "graphs" / "postprocess_masks.onnx"


class PromptError(SegmentationError, ValueError):
    """Prompts that the decoder cannot take (no prompt, bad shapes, bad labels)."""


class Prediction(NamedTuple):
    """Decoder output, with the semantics of ``SamPredictor.predict``.

    Attributes:
        masks: ``[K, H, W]`` bool at the original image size (K=3 multimask, else 1).
        scores: ``[K]`` float32 predicted IoU of each mask.
        low_res_logits: ``[K, 256, 256]`` float32 logits, for refining with a later click.
    """

    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray


def build_prompt(
    points: Optional[Sequence[Sequence[float]]],
    labels: Optional[Sequence[int]],
    box: Optional[Sequence[float]],
) -> tuple:
    """Points ``[N, 2]`` (x, y) and labels ``[N]`` as the ONNX decoder wants them.

    A box becomes two corners labelled 2 and 3. The ``(0, 0)``/-1 padding point
    is added only without a box, as Meta's ONNX example (and SamPredictor) do.
    """
    coords = np.zeros((0, 2), np.float64)
    labs = np.zeros((0,), np.float64)
    if points is not None and len(points):
        coords = np.asarray(points, np.float64).reshape(-1, 2)
        if labels is None:
            raise PromptError("points were given without labels (1 include, 0 exclude)")
        labs = np.asarray(labels, np.float64).reshape(-1)
        if labs.shape[0] != coords.shape[0]:
            raise PromptError(f"{coords.shape[0]} points but {labs.shape[0]} labels")
        if not np.isin(labs, (0, 1)).all():
            raise PromptError(f"point labels must be 1 (include) or 0 (exclude), got {sorted(set(labs))}")
    if box is not None:
        b = np.asarray(box, np.float64).reshape(-1)
        if b.shape[0] != 4:
            raise PromptError(f"a box is (x0, y0, x1, y1), got {b.shape[0]} values")
        coords = np.concatenate([coords, b.reshape(2, 2)])
        labs = np.concatenate([labs, [2.0, 3.0]])
    elif coords.shape[0]:
        coords = np.concatenate([coords, [[0.0, 0.0]]])
        labs = np.concatenate([labs, [-1.0]])
    if not coords.shape[0]:
        raise PromptError("no prompt: give at least one point or a box")
    if not np.isfinite(coords).all():
        raise PromptError("prompt coordinates must be finite numbers")
    return coords, labs


class SamDecoder:
    """Runs a samexporter decoder (4 masks, or 1 with ``--return-single-mask``).

    Args:
        path: the decoder ``.onnx`` file.
        threads: ONNX Runtime intra-op threads; ``None`` lets it choose.
    """

    def __init__(self, path: str, threads: Optional[int] = None) -> None:
        self.path = os.fspath(path)
        self._session = ox.open_session(self.path, "decoder", threads)
        ins, outs = ox.signature(self._session)
        hint = _ENCODER_HINT if "input_image" in ins else ""
        ox.require(self.path, "decoder", ins, _INPUTS, "inputs", hint)
        ox.require(self.path, "decoder", outs, _OUTPUTS, "outputs", hint)
        self._postprocess = ox.open_session(str(_POSTPROCESS), "mask post-processing", threads)

    def predict(
        self,
        embedding: ImageEmbedding,
        points: Optional[Sequence[Sequence[float]]] = None,
        labels: Optional[Sequence[int]] = None,
        box: Optional[Sequence[float]] = None,
        mask_input: Optional[np.ndarray] = None,
        multimask: bool = True,
    ) -> Prediction:
        """Predict masks for prompts given in original-image pixels.

        Args:
            embedding: output of :meth:`SamEncoder.encode`.
            points: ``[N, 2]`` (x, y) pixel coordinates in the original image.
            labels: ``[N]``, 1 include, 0 exclude.
            box: ``(x0, y0, x1, y1)`` in original-image pixels.
            mask_input: ``[1, 256, 256]`` low-res logits of an earlier prediction.
            multimask: three candidate masks if True, else one.
        """
        if embedding.embeddings.shape != EMBEDDING_SHAPE:
            raise PromptError(f"embeddings must have shape {EMBEDDING_SHAPE}, got {embedding.embeddings.shape}")
        coords, labs = build_prompt(points, labels, box)
        coords = apply_coords(coords, embedding.original_size)
        has_mask = mask_input is not None
        mask = np.zeros((1, 1, LOW_RES, LOW_RES), np.float32)
        if has_mask:
            m = np.asarray(mask_input, np.float32)
            if m.size != LOW_RES * LOW_RES:
                raise PromptError(f"mask_input must be [1, 256, 256] logits, got shape {m.shape}")
            mask[:] = m.reshape(1, 1, LOW_RES, LOW_RES)
        feed = {
            "image_embeddings": embedding.embeddings,
            "point_coords": coords[None].astype(np.float32),
            "point_labels": labs[None].astype(np.float32),
            "mask_input": mask,
            "has_mask_input": np.array([1.0 if has_mask else 0.0], np.float32),
            "orig_im_size": _GRAPH_MASK_SIZE,
        }
        scores, low_res = self._session.run([o.name for o in _OUTPUTS], feed)
        scores, low_res = scores[0], low_res[0]
        if low_res.shape[0] > 1:  # index 0 is the single-mask output, 1..3 the multimask ones
            pick = slice(1, None) if multimask else slice(0, 1)
            scores, low_res = scores[pick], low_res[pick]
        masks = self._postprocess.run(["masks"], {
            "low_res_masks": np.ascontiguousarray(low_res, np.float32),
            "input_size": np.array(embedding.input_size, np.int64),
            "original_size": np.array(embedding.original_size, np.int64),
        })[0]
        return Prediction(
            masks=masks,
            scores=np.ascontiguousarray(scores, np.float32),
            low_res_logits=np.ascontiguousarray(low_res, np.float32),
        )
