"""Pure numpy helpers that turn raster band values into the RGB uint8 image SAM takes.

Band indices are 1-based, as in GDAL and QGIS. ``valid`` arrays are bool
masks of the same shape as the values: nodata, NaN and inf are invalid and
come out black.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import SegmentationError

Bands = Tuple[int, int, int]
Stretch = Tuple[float, float]  # low, high band values mapped to 0 and 255

STRETCH_PERCENTILES = (2.0, 98.0)


class BandError(SegmentationError, ValueError):
    """The band choice does not fit the raster."""


def default_bands(interpretations: Sequence[str]) -> Bands:
    """R, G, B by colour interpretation, else the first three non-alpha bands.

    Args:
        interpretations: GDAL colour interpretation names of bands 1..N
            (``"Red"``, ``"Green"``, ``"Blue"``, ``"Alpha"``, ``"Gray"``, ...).
    Returns:
        Three 1-based band indices. One usable band gives grey ``(b, b, b)``;
        two give ``(b1, b2, b2)``.
    """
    names = [n.lower() for n in interpretations]
    if not names:
        raise BandError("the raster has no bands")
    if all(c in names for c in ("red", "green", "blue")):
        return names.index("red") + 1, names.index("green") + 1, names.index("blue") + 1
    usable = [i + 1 for i, n in enumerate(names) if n != "alpha"] or [1]
    if len(usable) == 1:
        return usable[0], usable[0], usable[0]
    if len(usable) == 2:
        return usable[0], usable[1], usable[1]
    return usable[0], usable[1], usable[2]


def check_bands(bands: Sequence[int], band_count: int) -> Bands:
    """Validate a user band choice of 1 or 3 band indices (1-based)."""
    b = tuple(int(v) for v in bands)
    if len(b) == 1:
        b = b * 3
    if len(b) != 3:
        raise BandError(f"choose one band (grey) or three bands (R, G, B), got {len(b)}: {b}")
    bad = [v for v in b if not 1 <= v <= band_count]
    if bad:
        raise BandError(f"band {bad[0]} does not exist: the raster has bands 1 to {band_count}")
    return b  # type: ignore[return-value]


def valid_mask(values: np.ndarray, nodata: Optional[float]) -> np.ndarray:
    """Bool mask of finite values that are not the band's nodata value."""
    valid = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
    if nodata is not None and not np.isnan(nodata):  # NaN nodata is already covered by isfinite
        valid &= values != (values.dtype.type(nodata) if values.dtype.kind == "f" else nodata)
    return valid


def percentile_stretch(values: np.ndarray, valid: np.ndarray) -> Optional[Stretch]:
    """``(low, high)``: the 2nd and 98th percentiles of the valid values; None if there are none."""
    v = values[valid]
    if v.size == 0:
        return None
    lo, hi = np.percentile(v.astype(np.float64), STRETCH_PERCENTILES)
    return float(lo), float(hi)


def stretch_to_uint8(values: np.ndarray, stretch: Optional[Stretch], valid: np.ndarray) -> np.ndarray:
    """Values -> uint8: linear from ``low`` (0) to ``high`` (255), clipped; invalid -> 0.

    ``stretch=None`` means 8-bit data shown as is.
    """
    if stretch is None:
        out = values.astype(np.uint8)
    else:
        lo, hi = stretch
        span = hi - lo if hi > lo else 1.0
        scaled = (values.astype(np.float64) - lo) * (255.0 / span)
        out = np.clip(np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0) + 0.5, 0, 255).astype(np.uint8)
    out[~valid] = 0
    return out


def palette_lut(entries: Sequence[Sequence[int]]) -> np.ndarray:
    """``[N, 3]`` uint8 lookup table from colour-table entries ``(r, g, b[, a])``; alpha 0 -> black."""
    lut = np.zeros((max(len(entries), 1), 3), np.uint8)
    for i, e in enumerate(entries):
        if len(e) < 4 or e[3] != 0:
            lut[i] = e[:3]
    return lut


def expand_palette(index: np.ndarray, lut: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``[H, W]`` palette indices -> ``[H, W, 3]`` uint8 RGB; invalid or out-of-table -> black."""
    idx = np.asarray(index).astype(np.int64)
    ok = valid & (idx >= 0) & (idx < lut.shape[0])
    out = lut[np.where(ok, idx, 0)]
    out[~ok] = 0
    return out

