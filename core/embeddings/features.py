"""Image features from cached embeddings, stitched over overlapping crops onto one raster grid.

:func:`image_features` is the one place that reads an embedding bundle (whatever its family):
it gives the valid ``[C, rows, cols]`` cells and their size in crop pixels. :class:`CellGrid`
is a raster-wide grid of such cells anchored at source pixel ``(0, 0)``; :class:`Blender`
resamples each crop's cells onto a window of it (bilinear at the grid's cell centres, so a
crop whose cells line up with the grid gives its values exactly) and blends overlapping crops
with weights that taper smoothly (smoothstep) to zero over :data:`RAMP_PX` at each crop edge
beyond which the raster continues: no seams, and no crop's edge (where the encoder saw no context) counts
where a neighbour sees further. Cells no crop covers (their centre is off the raster) are NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Tuple

import numpy as np

from ..families.base import ImageEmbedding
from ..families.grid import embedding_grid
from ..raster.crops import CropSpec
from ..raster.geo import Extent, GeoTransform, check_geotransform, extent_to_pixel_bounds

RAMP_PX = 256  # source pixels (at scale 1) over which a crop's weight rises from its edge to 1
_MIN_WEIGHT = 0.02  # of the ramp: a cell at an edge still counts where no other crop covers it


@dataclass(frozen=True)
class CropFeatures:
    """The meaningful part of one crop's embedding.

    Attributes:
        values: ``[C, rows, cols]`` float32, C = 256; only cells that hold some of the image.
        cell: ``(cell_h, cell_w)`` crop-frame pixels per cell (16 for a full SAM crop).
    """

    values: np.ndarray
    cell: Tuple[float, float]


FeatureFn = Callable[[CropSpec], CropFeatures]  # a crop's cached features, e.g. image_features of its bundle


def image_features(bundle: ImageEmbedding) -> CropFeatures:
    """Valid cells of ``bundle``'s ``[1, 256, 64, 64]`` image embedding, and their size."""
    g = embedding_grid(bundle.original_size, bundle.input_size)
    return CropFeatures(np.asarray(bundle.embeddings, np.float32)[0, :, : g.rows, : g.cols], (g.cell_h, g.cell_w))


def raster_bounds(width: int, height: int, gt: GeoTransform,
                  extent: Optional[Extent]) -> Optional[Tuple[float, float, float, float]]:
    """Source pixel bounds ``(c0, r0, c1, r1)`` of a map ``extent`` clipped to a ``width x height``
    raster of geotransform ``gt``; None for the whole raster (``extent`` None)."""
    if extent is None:
        return None
    c0, r0, c1, r1 = extent_to_pixel_bounds(gt, extent)
    return max(c0, 0.0), max(r0, 0.0), min(c1, float(width)), min(r1, float(height))


class Window(NamedTuple):
    """Cells ``[row0, row0 + rows) x [col0, col0 + cols)`` of a :class:`CellGrid`."""

    row0: int
    col0: int
    rows: int
    cols: int


@dataclass(frozen=True)
class CellGrid:
    """Raster-wide cells: cell ``(i, j)`` covers source pixels ``[j cw, (j+1) cw) x [i ch, (i+1) ch)``.

    Attributes:
        cell_h, cell_w: source pixels per cell (16 for SAM on full 1024 px crops at scale 1).
        width, height: the raster's size in pixels; the last row and column of cells may
            run past it (their centres then lie off the raster and stay NaN).
    """

    cell_h: float
    cell_w: float
    width: int
    height: int

    @classmethod
    def of(cls, crop: CropSpec, features: CropFeatures, width: int, height: int) -> CellGrid:
        """The grid of ``crop``'s cells (every grid crop of a raster at one scale has the same)."""
        return cls(features.cell[0] * crop.scale, features.cell[1] * crop.scale, width, height)

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.cell_h - 1e-9)

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.cell_w - 1e-9)

    def window(self, bounds: Optional[Tuple[float, float, float, float]] = None) -> Window:
        """Cells overlapping source pixel ``bounds`` ``(c0, r0, c1, r1)`` (None: the whole raster),
        clipped to the raster's cells."""
        if bounds is None:
            return Window(0, 0, self.rows, self.cols)
        c0, r0, c1, r1 = bounds
        j0 = min(max(math.floor(c0 / self.cell_w), 0), self.cols)
        i0 = min(max(math.floor(r0 / self.cell_h), 0), self.rows)
        j1 = min(max(math.ceil(c1 / self.cell_w), j0), self.cols)
        i1 = min(max(math.ceil(r1 / self.cell_h), i0), self.rows)
        return Window(i0, j0, i1 - i0, j1 - j0)

    def centres(self, window: Window) -> Tuple[np.ndarray, np.ndarray]:
        """Source pixel positions ``(rows [h], cols [w])`` of the window's cell centres."""
        return ((np.arange(window.rows) + window.row0 + 0.5) * self.cell_h,
                (np.arange(window.cols) + window.col0 + 0.5) * self.cell_w)

    def geotransform(self, raster_gt: GeoTransform, window: Window) -> GeoTransform:
        """GDAL geotransform of the window's cells (a rotated raster stays rotated)."""
        x0, a, b, y0, d, e = check_geotransform(raster_gt)
        col, row = window.col0 * self.cell_w, window.row0 * self.cell_h
        return (x0 + col * a + row * b, a * self.cell_w, b * self.cell_h,
                y0 + col * d + row * e, d * self.cell_w, e * self.cell_h)


class _Axis(NamedTuple):
    """How a crop's cells map onto a run of grid cells along one axis."""

    first: int  # first grid cell (index in the window) the crop covers
    matrix: np.ndarray  # [n, crop cells] bilinear weights
    weight: np.ndarray  # [n] blending weight (tapers to the crop's interior edges)


def _axis(centres: np.ndarray, start: float, cells: int, cell: float, limit: int, ramp: float) -> Optional[_Axis]:
    """``centres`` (source pixels) against crop cells ``[start + k cell, start + (k+1) cell)``, k < cells;
    the crop ends at ``limit`` (the raster's size) at the latest."""
    end = min(start + cells * cell, float(limit))
    idx = np.flatnonzero((centres >= start) & (centres < end))
    if idx.size == 0:
        return None
    x = centres[idx]
    u = np.clip((x - start) / cell - 0.5, 0.0, cells - 1.0)
    i0 = np.minimum(np.floor(u).astype(np.int64), max(cells - 2, 0))
    frac = u - i0
    m = np.zeros((idx.size, cells), np.float32)
    rows = np.arange(idx.size)
    m[rows, i0] = 1.0 - frac
    if cells > 1:
        m[rows, i0 + 1] += frac
    near = np.full(idx.size, np.inf)
    if start > 0:
        near = np.minimum(near, x - start)
    if end < limit:
        near = np.minimum(near, end - x)
    t = np.clip(near / ramp, _MIN_WEIGHT, 1.0)
    weight = (t * t * (3.0 - 2.0 * t)).astype(np.float32)  # smoothstep: no kink where a ramp starts or ends
    return _Axis(int(idx[0]), m, weight)


class Blender:
    """Weighted mean of crops' cell values over one window of a :class:`CellGrid`.

    Args:
        grid: the raster's cells.
        window: the cells to fill.
        channels: values per cell (256 features, N principal components, K similarity maps).
    """

    def __init__(self, grid: CellGrid, window: Window, channels: int) -> None:
        self.grid, self.window = grid, window
        self._sum = np.zeros((channels, window.rows, window.cols), np.float32)
        self._weight = np.zeros((window.rows, window.cols), np.float32)

    def add(self, crop: CropSpec, values: np.ndarray, cell: Tuple[float, float]) -> bool:
        """Blend in ``values`` ``[channels, rows, cols]`` on ``crop``'s cells of ``cell`` crop
        pixels (see :class:`CropFeatures`); returns False if the crop misses the window."""
        ys, xs = self.grid.centres(self.window)
        ramp = RAMP_PX * crop.scale
        ax_r = _axis(ys, crop.row0, values.shape[1], cell[0] * crop.scale, self.grid.height, ramp)
        ax_c = _axis(xs, crop.col0, values.shape[2], cell[1] * crop.scale, self.grid.width, ramp)
        if ax_r is None or ax_c is None:
            return False
        resampled = np.matmul(ax_r.matrix, np.matmul(values, ax_c.matrix.T))  # [channels, n_r, n_c]
        w = ax_r.weight[:, None] * ax_c.weight[None, :]
        rs = slice(ax_r.first, ax_r.first + w.shape[0])
        cs = slice(ax_c.first, ax_c.first + w.shape[1])
        self._sum[:, rs, cs] += resampled * w
        self._weight[rs, cs] += w
        return True

    def result(self) -> np.ndarray:
        """``[channels, rows, cols]`` float32 blended values; NaN where no crop covers a cell."""
        covered = self._weight > 0
        out = np.full(self._sum.shape, np.nan, np.float32)
        np.divide(self._sum, self._weight, out=out, where=covered[None])
        return out
