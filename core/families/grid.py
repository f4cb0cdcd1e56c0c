"""Where the cells of an image embedding lie on the image that was encoded, for every family.

Every family's ``image_embeddings`` is a ``64 x 64`` grid over the encoder's 1024 px frame:
cell ``(i, j)`` covers frame pixels ``[16 i, 16 i + 16) x [16 j, 16 j + 16)``. The image fills
the frame's top-left ``input_size`` (see :class:`.base.ImageEmbedding`): SAM resizes the
longest side to 1024 and pads the rest, SAM 2.1 and EfficientSAM stretch the image to
1024 x 1024 without keeping its aspect. So one frame pixel is ``original / input`` image
pixels on each axis, and only the cells that hold some of the image are meaningful.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .base import Shape

GRID_CELLS = 64  # cells per side of the embedding grid
CELL_FRAME_PX = 16  # frame pixels per cell side (1024 / 64)


class EmbeddingGrid(NamedTuple):
    """The embedding cells of one encoded image.

    Attributes:
        rows, cols: cells holding some of the image (the others cover padding only).
        cell_h, cell_w: image pixels per cell, vertically and horizontally (cell ``(i, j)``
            starts at image pixel ``(j * cell_w, i * cell_h)``).
    """

    rows: int
    cols: int
    cell_h: float
    cell_w: float


def embedding_grid(original_size: Shape, input_size: Shape) -> EmbeddingGrid:
    """The grid of an embedding of an image of ``original_size`` ``(h, w)`` that the encoder
    saw as ``input_size`` ``(h, w)`` frame pixels (both from the bundle)."""
    (oh, ow), (ih, iw) = original_size, input_size
    if min(oh, ow, ih, iw) < 1:
        raise ValueError(f"image sizes must be positive, got {original_size} and {input_size}")
    rows = min(GRID_CELLS, math.ceil(ih / CELL_FRAME_PX))
    cols = min(GRID_CELLS, math.ceil(iw / CELL_FRAME_PX))
    return EmbeddingGrid(rows, cols, CELL_FRAME_PX * oh / ih, CELL_FRAME_PX * ow / iw)
