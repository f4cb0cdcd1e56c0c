"""Pure affine geotransform maths between map coordinates and raster pixels.

A geotransform is GDAL's 6-tuple ``(x0, a, b, y0, d, e)``::

    x = x0 + col * a + row * b
    y = y0 + col * d + row * e

where ``(col, row)`` is a continuous pixel position: pixel ``(i, j)`` covers
``[i, i + 1) x [j, j + 1)``, so its centre is ``(i + 0.5, j + 0.5)``. Rotated
and sheared transforms (``b``, ``d`` non-zero) are handled exactly.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

from ..errors import SegmentationError

GeoTransform = Tuple[float, float, float, float, float, float]
Extent = Tuple[float, float, float, float]  # xmin, ymin, xmax, ymax

# How QGIS shows a raster without georeferencing: x = column, y = -row (QgsGdalProvider
# flips GDAL's default pixel height of +1 to -1), so canvas clicks land on the right pixels.
PIXEL_GEOTRANSFORM: GeoTransform = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


class GeoreferencingError(SegmentationError):
    """The raster's geotransform cannot be inverted (zero or degenerate pixel size)."""


def check_geotransform(gt: Sequence[float]) -> GeoTransform:
    """Return ``gt`` as a tuple of 6 floats, or raise if it is not an invertible affine transform."""
    t = tuple(float(v) for v in gt)
    if len(t) != 6 or not all(np.isfinite(t)):
        raise GeoreferencingError(f"a geotransform holds 6 finite numbers, got {gt!r}")
    if t[1] * t[5] - t[2] * t[4] == 0.0:
        raise GeoreferencingError(
            f"the raster's geotransform {t} has a zero-area pixel; fix its georeferencing"
        )
    return t  # type: ignore[return-value]


def invert_geotransform(gt: Sequence[float]) -> GeoTransform:
    """The geotransform mapping map ``(x, y)`` back to pixel ``(col, row)`` (as ``gdal.InvGeoTransform``)."""
    x0, a, b, y0, d, e = check_geotransform(gt)
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    return (-(ia * x0 + ib * y0), ia, ib, -(id_ * x0 + ie * y0), id_, ie)


def apply_geotransform(gt: Sequence[float], u: np.ndarray, v: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Apply ``gt`` to arrays ``u`` (first input axis) and ``v`` (second); returns float64 arrays."""
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    return gt[0] + u * gt[1] + v * gt[2], gt[3] + u * gt[4] + v * gt[5]


def map_to_pixel(gt: Sequence[float], points: Iterable[Sequence[float]]) -> np.ndarray:
    """Map ``[N, 2]`` map coordinates ``(x, y)`` to continuous pixel positions ``(col, row)``."""
    p = np.asarray(list(points), np.float64).reshape(-1, 2)
    col, row = apply_geotransform(invert_geotransform(gt), p[:, 0], p[:, 1])
    return np.stack([col, row], axis=1)


def pixel_to_map(gt: Sequence[float], pixels: Iterable[Sequence[float]]) -> np.ndarray:
    """Map ``[N, 2]`` continuous pixel positions ``(col, row)`` to map coordinates ``(x, y)``."""
    p = np.asarray(list(pixels), np.float64).reshape(-1, 2)
    x, y = apply_geotransform(check_geotransform(gt), p[:, 0], p[:, 1])
    return np.stack([x, y], axis=1)


def sub_geotransform(gt: Sequence[float], col0: float, row0: float, scale: float = 1.0) -> GeoTransform:
    """Geotransform of a grid whose pixel ``(0, 0)`` starts at source pixel ``(col0, row0)``
    and whose pixels are ``scale`` source pixels wide (a crop's mask grid)."""
    x0, a, b, y0, d, e = check_geotransform(gt)
    ox, oy = x0 + col0 * a + row0 * b, y0 + col0 * d + row0 * e
    return (ox, a * scale, b * scale, oy, d * scale, e * scale)


def extent_to_pixel_bounds(gt: Sequence[float], extent: Extent) -> Tuple[float, float, float, float]:
    """Pixel bounds ``(col_min, row_min, col_max, row_max)`` of a map extent's four corners.

    With a rotated geotransform the extent is a parallelogram in pixel space;
    this is its bounding box.
    """
    xmin, ymin, xmax, ymax = extent
    px = map_to_pixel(gt, [(xmin, ymin), (xmin, ymax), (xmax, ymin), (xmax, ymax)])
    return float(px[:, 0].min()), float(px[:, 1].min()), float(px[:, 0].max()), float(px[:, 1].max())


def is_identity_geotransform(gt: Optional[Sequence[float]]) -> bool:
    """True for GDAL's placeholder ``(0, 1, 0, 0, 0, 1)``, which means "no georeferencing"."""
    return gt is None or tuple(float(v) for v in gt) == (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
