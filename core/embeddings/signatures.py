"""What an example object looks like to the encoder: its *signature*, and how much of each cell it covers.

An example's signature is the mean of the embedding vectors under its polygon on the embedding
grid (cells at least half covered; the most covered ones for an object smaller than a cell), taken
on the scale-1 grid crop that holds it best (every crop it touches when none does). GDAL only (no
QGIS); polygons are WKB in the raster CRS, pixel positions continuous source pixels ``(col, row)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
from osgeo import ogr

from ..errors import SegmentationError
from ..gdal_calls import burn, gdal_try
from ..raster.crops import CropGrid, CropSpec
from ..raster.geo import GeoTransform, check_geotransform, extent_to_pixel_bounds
from .features import CellGrid, FeatureFn

SUBSAMPLE = 4  # coverage of a cell by a polygon is measured on SUBSAMPLE x SUBSAMPLE points
MIN_RADIUS_CELLS = 1.5  # peaks closer than this many cells are one peak, whatever the object's size


class SimilarityError(SegmentationError):
    """An example cannot be used (empty, not a polygon, off the encoded raster)."""


@dataclass(frozen=True)
class Example:
    """One object to find more of: ``wkb`` is its (multi)polygon in the raster CRS."""

    id: int
    wkb: bytes
    label: str = ""


@dataclass(frozen=True)
class Signature:
    """What an example looks like to the encoder, and its size.

    Attributes:
        example: the example.
        vector: ``[C]`` float32 unit vector, the mean embedding under the polygon.
        size_px: ``(w, h)`` of its bounding box, source pixels.
        area_px: its area, source pixels.
        centre: ``(col, row)`` of its bounding box centre, source pixels.
        cells: how many cells (summed coverage) went into the mean.
    """

    example: Example
    vector: np.ndarray
    size_px: Tuple[float, float]
    area_px: float
    centre: Tuple[float, float]
    cells: float

    def radius(self, grid: CellGrid) -> float:
        """Non-maximum suppression radius, source pixels: half the object's size."""
        w, h = self.size_px
        return max(0.5 * math.sqrt(w * h), MIN_RADIUS_CELLS * max(grid.cell_h, grid.cell_w))


def example_geometry(example: Example) -> ogr.Geometry:
    """The example's (multi)polygon; :class:`SimilarityError` for anything else (unreadable WKB too)."""
    geom, _ = gdal_try(lambda: ogr.CreateGeometryFromWkb(example.wkb)) if example.wkb else (None, "")
    if geom is None or geom.IsEmpty() or ogr.GT_Flatten(geom.GetGeometryType()) not in (
            ogr.wkbPolygon, ogr.wkbMultiPolygon):
        raise SimilarityError(f"example {example.id} is not a polygon: choose saved objects (polygons)")
    return geom


def cells_geotransform(raster_gt: GeoTransform, col0: float, row0: float, cell_w: float,
                       cell_h: float) -> GeoTransform:
    """Geotransform of a grid of ``cell_w x cell_h`` source-pixel cells starting at ``(col0, row0)``."""
    x0, a, b, y0, d, e = check_geotransform(raster_gt)
    return (x0 + col0 * a + row0 * b, a * cell_w, b * cell_h, y0 + col0 * d + row0 * e, d * cell_w, e * cell_h)


def coverage(geoms: Sequence[ogr.Geometry], gt: GeoTransform, rows: int, cols: int) -> np.ndarray:
    """``[rows, cols]`` fraction (0..1) of each cell of the grid ``gt`` inside any of ``geoms``."""
    s = SUBSAMPLE
    fine = (gt[0], gt[1] / s, gt[2] / s, gt[3], gt[4] / s, gt[5] / s)
    burnt = burn(geoms, cols * s, rows * s, fine).astype(np.float32)
    return burnt.reshape(rows, s, cols, s).mean(axis=(1, 3))


def _inside(grid: CropGrid, raster_gt: GeoTransform, example: Example,
            geom: ogr.Geometry) -> Tuple[float, float, float, float]:
    """The example's pixel bounds clipped to the raster; raises if it lies outside."""
    c0, r0, c1, r1 = _pixel_bounds(raster_gt, geom)
    inside = (max(c0, 0.0), max(r0, 0.0), min(c1, float(grid.width)), min(r1, float(grid.height)))
    if inside[2] <= inside[0] or inside[3] <= inside[1]:
        raise SimilarityError(f"example {example.id} lies outside the raster: use objects on this raster "
                              "as examples")
    return inside


def _example_crops(grid: CropGrid, bounds: Tuple[float, float, float, float]) -> List[CropSpec]:
    c0, r0, c1, r1 = bounds
    best = grid.best_crop(np.array([[c0, r0], [c1, r1]]))
    return [best] if best.scale == 1 else list(grid.crops(bounds))


def example_crops(grid: CropGrid, raster_gt: GeoTransform, example: Example) -> List[CropSpec]:
    """The scale-1 grid crops a signature is taken on: the one holding the example best, or
    every crop it touches when no single crop holds it."""
    return _example_crops(grid, _inside(grid, raster_gt, example, example_geometry(example)))


def _pixel_bounds(raster_gt: GeoTransform, geom: ogr.Geometry) -> Tuple[float, float, float, float]:
    xmin, xmax, ymin, ymax = geom.GetEnvelope()
    return extent_to_pixel_bounds(raster_gt, (xmin, ymin, xmax, ymax))


def signature(example: Example, grid: CropGrid, raster_gt: GeoTransform, features: FeatureFn) -> Signature:
    """The signature of ``example`` on the crops of ``grid`` (a raster of ``raster_gt``)."""
    geom = example_geometry(example)
    c0, r0, c1, r1 = _pixel_bounds(raster_gt, geom)
    inside = _inside(grid, raster_gt, example, geom)
    total, weight = None, 0.0
    for crop in _example_crops(grid, inside):
        f = features(crop)
        ch, cw = f.cell[0] * crop.scale, f.cell[1] * crop.scale
        _, rows, cols = f.values.shape
        cov = coverage([geom], cells_geotransform(raster_gt, crop.col0, crop.row0, cw, ch), rows, cols)
        w = np.where(cov >= 0.5, cov, 0.0) if (cov >= 0.5).any() else np.where(cov >= cov.max() * 0.5, cov, 0.0)
        part = np.tensordot(f.values, w, axes=([1, 2], [0, 1]))
        total = part if total is None else total + part
        weight += float(w.sum())
    if total is None or weight <= 0:
        raise SimilarityError(f"example {example.id} covers no encoded part of the raster")
    mean = total / weight
    norm = float(np.linalg.norm(mean))
    if norm == 0:
        raise SimilarityError(f"example {example.id} has an all-zero embedding: the raster is blank there")
    area_px = geom.GetArea() / abs(raster_gt[1] * raster_gt[5] - raster_gt[2] * raster_gt[4])
    return Signature(example, (mean / norm).astype(np.float32), (c1 - c0, r1 - r0), area_px,
                     ((c0 + c1) / 2, (r0 + r1) / 2), weight)
