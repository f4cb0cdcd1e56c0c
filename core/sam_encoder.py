"""SAM image encoder (the heavy ViT stage) on ONNX Runtime."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import onnx_session as ox
from .errors import ModelError, SegmentationError
from .transforms import IMG_SIZE, Shape, normalize_and_pad, resize_longest_side

EMBEDDING_SHAPE = (1, 256, 64, 64)
_OUTPUT = ox.TensorSpec("image_embeddings", 4)
_DECODER_HINT = "This looks like a SAM decoder; choose the encoder file."


class ImageError(SegmentationError, ValueError):
    """The image handed to the encoder is not HxWx3 uint8."""


@dataclass(frozen=True)
class ImageEmbedding:
    """Encoder output for one image.

    Attributes:
        embeddings: ``[1, 256, 64, 64]`` float32 image embeddings.
        original_size: ``(h, w)`` of the image given to :meth:`SamEncoder.encode`, in pixels.
        input_size: ``(h, w)`` after resizing the longest side to 1024, in pixels.
    """

    embeddings: np.ndarray
    original_size: Shape
    input_size: Shape


def check_image(image: Any) -> np.ndarray:
    """Return ``image`` as a C-contiguous HxWx3 uint8 array or raise :class:`ImageError`."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy image, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ImageError(f"expected an HxWx3 RGB image, got shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixel values 0-255, got {image.dtype}")
    return np.ascontiguousarray(image)


class SamEncoder:
    """Runs a samexporter encoder, with or without ``--use-preprocess``.

    Args:
        path: the encoder ``.onnx`` file.
        threads: ONNX Runtime intra-op threads; ``None`` lets it choose.
    """

    def __init__(self, path: str, threads: Optional[int] = None) -> None:
        self.path = os.fspath(path)
        self._session = ox.open_session(self.path, "encoder", threads, low_memory=True)
        ins, outs = ox.signature(self._session)
        hint = _DECODER_HINT if "image_embeddings" in ins else ""
        spec = ins.get("input_image")
        if spec is None or spec.rank not in (3, 4) or len(ins) != 1:
            raise ModelError(
                f"'{self.path}' is not a SAM encoder exported by samexporter: expected one input "
                f"'input_image' of rank 3 (HxWx3, --use-preprocess) or rank 4 (1x3x1024x1024); "
                f"found {', '.join(str(s) for s in ins.values()) or 'none'}. {hint}".rstrip()
            )
        ox.require(self.path, "encoder", outs, [_OUTPUT], "output", hint)
        self.preprocess_in_graph = spec.rank == 3
        self._run_options = ox.shrinking_run_options()  # QGIS keeps living after the encode

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        """Encode an HxWx3 uint8 RGB image of any size (resized as ``SamPredictor.set_image``)."""
        image = check_image(image)
        resized = resize_longest_side(image, IMG_SIZE)
        feed = resized.astype(np.float32) if self.preprocess_in_graph else normalize_and_pad(resized)
        out = self._session.run([_OUTPUT.name], {"input_image": feed}, self._run_options)[0]
        if out.shape != EMBEDDING_SHAPE:
            raise ModelError(
                f"'{self.path}' returned embeddings of shape {out.shape}, expected {EMBEDDING_SHAPE}"
            )
        return ImageEmbedding(
            embeddings=np.ascontiguousarray(out, dtype=np.float32),
            original_size=(int(image.shape[0]), int(image.shape[1])),
            input_size=(int(resized.shape[0]), int(resized.shape[1])),
        )
