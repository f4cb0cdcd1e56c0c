"""Which part of a raster goes through the encoder: crops on an overlapping grid.

A crop is a ``width x height`` frame (at most 1024 x 1024) of frame pixels,
each ``scale`` x ``scale`` source pixels, whose top-left corner is source
pixel ``(col0, row0)``. A frame is never stretched: frame and source pixels
are linked by a shift and a power-of-two scale. Where the frame runs past the
raster's right or bottom edge, that part is read as black padding.

Grid crops at scale 1 step by ``stride`` (768 by default): every point lies
at least ``(1024 - stride) / 2`` = 128 px inside some crop, neighbouring
clicks share crops, and "Encode Image" costs (1024 / 768)^2 = 1.78x the
non-overlapping tiling (a stride of 512 would give 256 px but cost 4x). The
last crop of a row or column is shifted back to end at the raster's edge, so
it holds a full frame of pixels rather than padding; its step from the one
before lies between 1/8 and 9/8 of the stride (no near-duplicate crops, at
least 160 px of overlap with the default stride). An axis shorter than a
frame is one crop of the raster's size (SAM upsamples it, as SamPredictor
does). An object larger than the overlap that still crosses a crop edge is
handled by :meth:`CropGrid.recentre`, or by one of the coarser *support crops* ("Encode
Image" prepares them): at scales 2, 4, ... the frames overlap by half, so an object up to
``(1024 / 2 - 2 * 64) * scale`` source pixels lies whole, with context, inside one of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..families.transforms import IMG_SIZE
from .geo import Extent, GeoTransform, extent_to_pixel_bounds, sub_geotransform

DEFAULT_STRIDE = 768
_LAST_STEP_SLACK = 1 / 8  # the last step may exceed the stride by this fraction of it
RECENTRE_CONTEXT = 64  # frame pixels kept around an object's bounding box when re-centring

Bounds = Tuple[float, float, float, float]  # col_min, row_min, col_max, row_max (source pixels)


@dataclass(frozen=True)
class CropSpec:
    """One encoder frame: ``width x height`` frame pixels of ``scale`` source pixels each."""

    col0: int
    row0: int
    width: int
    height: int
    scale: int = 1

    def __post_init__(self) -> None:
        sizes_ok = 0 < self.width <= IMG_SIZE and 0 < self.height <= IMG_SIZE
        if self.col0 < 0 or self.row0 < 0 or self.scale < 1 or not sizes_ok:
            raise ValueError(f"invalid crop {self}")

    @property
    def source_bounds(self) -> Tuple[int, int, int, int]:
        """``(col_min, row_min, col_max, row_max)`` covered by the frame, in source pixels."""
        return self.col0, self.row0, self.col0 + self.width * self.scale, self.row0 + self.height * self.scale

    def to_frame(self, pixels: np.ndarray) -> np.ndarray:
        """``[N, 2]`` continuous source pixel positions -> continuous frame positions."""
        return (np.asarray(pixels, np.float64) - (self.col0, self.row0)) / self.scale

    def geotransform(self, raster_gt: GeoTransform) -> GeoTransform:
        """Geotransform of the frame's pixel grid (and of masks decoded on it)."""
        return sub_geotransform(raster_gt, self.col0, self.row0, self.scale)

    def valid_size(self, raster_width: int, raster_height: int) -> Tuple[int, int]:
        """``(w, h)`` of the frame's top-left part made of pixels lying wholly inside the raster."""
        w = min(self.width, (raster_width - self.col0) // self.scale)
        h = min(self.height, (raster_height - self.row0) // self.scale)
        return max(w, 0), max(h, 0)

    def as_dict(self) -> dict:
        return {"col0": self.col0, "row0": self.row0, "width": self.width, "height": self.height,
                "scale": self.scale}


@dataclass(frozen=True)
class CropGrid:
    """Crop layout of a ``width x height`` raster (source pixels)."""

    width: int
    height: int
    size: int = IMG_SIZE
    stride: int = DEFAULT_STRIDE

    def __post_init__(self) -> None:
        if not 0 < self.stride <= self.size:
            raise ValueError(f"the crop stride must be in 1..{self.size}, got {self.stride}")

    @property
    def max_scale(self) -> int:
        """Smallest power-of-two scale at which the whole raster is one crop."""
        s = 1
        while math.ceil(max(self.width, self.height) / s) > self.size:
            s *= 2
        return s

    def _axis_len(self, length: int, scale: int) -> Optional[int]:
        """Frame length when the axis fits in one frame at ``scale``, else None."""
        n = math.ceil(length / scale)
        return n if n <= self.size else None

    def _step(self, scale: int, support: bool) -> int:
        """Source pixels between neighbouring origins: the grid stride, or half a frame for support crops."""
        return (self.size // 2 if support else self.stride) * scale

    def _origins(self, length: int, scale: int, support: bool = False) -> List[int]:
        if self._axis_len(length, scale) is not None:
            return [0]
        step, last = self._step(scale, support), length - self.size * scale
        n = max(1, math.ceil(last / step - _LAST_STEP_SLACK)) + 1
        return [k * step for k in range(n - 1)] + [last]

    def _crop(self, col0: int, row0: int, scale: int) -> CropSpec:
        w = self._axis_len(self.width, scale) or self.size
        h = self._axis_len(self.height, scale) or self.size
        return CropSpec(col0, row0, w, h, scale)

    def crops(self, bounds: Optional[Bounds] = None, scale: int = 1) -> Iterator[CropSpec]:
        """Grid crops at ``scale`` overlapping ``bounds`` (default: the whole raster), row by row."""
        c0, r0, c1, r1 = bounds if bounds is not None else (0, 0, self.width, self.height)
        span = self.size * scale
        for row in self._origins(self.height, scale):
            if row < r1 and row + span > r0:
                for col in self._origins(self.width, scale):
                    if col < c1 and col + span > c0:
                        yield self._crop(col, row, scale)

    def support_crops(self, bounds: Optional[Bounds] = None) -> Iterator[CropSpec]:
        """Support crops at scales 2, 4, ... :attr:`max_scale` overlapping ``bounds`` (default: all).

        What a click needs beyond the scale-1 grid when its object is larger than the
        grid's overlap: 3 more for the 12 grid crops of 3000 x 2000 px, about 0.7x the grid's
        count on very large rasters, none when the raster is a single crop.
        """
        c0, r0, c1, r1 = bounds if bounds is not None else (0, 0, self.width, self.height)
        scale = 2
        while scale <= self.max_scale:
            span = self.size * scale
            for row in self._origins(self.height, scale, support=True):
                if row < r1 and row + span > r0:
                    for col in self._origins(self.width, scale, support=True):
                        if col < c1 and col + span > c0:
                            yield self._crop(col, row, scale)
            scale *= 2

    def holding(self, bounds: Bounds, scale: int) -> Optional[CropSpec]:
        """The crop at ``scale`` of the grid (scale 1) or of the support crops (coarser) that holds
        ``bounds`` with at least :data:`RECENTRE_CONTEXT` frame pixels to every interior edge
        (the largest margin wins), or None."""
        support, need = scale > 1, RECENTRE_CONTEXT * scale
        c0, r0, c1, r1 = bounds
        col = self._best_origin(self.width, scale, c0, c1, support, need)
        row = self._best_origin(self.height, scale, r0, r1, support, need)
        return None if col is None or row is None else self._crop(col, row, scale)

    def _best_origin(self, length: int, scale: int, lo: float, hi: float, support: bool = False,
                     min_margin: float = 0.0) -> Optional[int]:
        """Origin whose crop holds ``[lo, hi]`` with the largest margin (at least ``min_margin``)
        to an interior edge."""
        span, best, best_margin = self.size * scale, None, -math.inf
        for o in self._origins(length, scale, support):
            if o <= lo and hi <= o + span:
                margin = min(lo - o if o > 0 else math.inf, o + span - hi if o + span < length else math.inf)
                if margin >= min_margin and margin > best_margin:
                    best, best_margin = o, margin
        return best

    def best_crop(self, pixels: np.ndarray) -> CropSpec:
        """Finest grid crop holding all ``[N, 2]`` source pixel positions, with the largest margin.

        Raises:
            ValueError: no position, or one off the raster (``0 <= col <= width``,
                ``0 <= row <= height``) or not finite: callers clip prompts to the raster first.
        """
        p = np.asarray(pixels, np.float64).reshape(-1, 2)
        inside = np.isfinite(p).all(axis=1) & (p >= 0).all(axis=1) & (p <= (self.width, self.height)).all(axis=1)
        if not p.size or not inside.all():
            off = p[~inside][0].tolist() if p.size else "none"
            raise ValueError(f"pixel position {off} is outside the {self.width} x {self.height} px raster")
        lo, hi = p.min(axis=0), p.max(axis=0)
        scale = 1
        while scale < self.max_scale:
            col = self._best_origin(self.width, scale, lo[0], hi[0])
            row = self._best_origin(self.height, scale, lo[1], hi[1])
            if col is not None and row is not None:
                return self._crop(col, row, scale)
            scale *= 2
        return self._crop(0, 0, self.max_scale)  # one crop holds the whole raster

    def recentre(self, bounds: Bounds) -> CropSpec:
        """Crop centred on an object's bounding box (source pixels) with context around it.

        The scale is the smallest power of two at which the box plus
        :data:`RECENTRE_CONTEXT` frame pixels each side fits. Origins snap to
        multiples of half that context so nearby objects share crops, and the
        crop is kept inside the raster where the raster is large enough.
        """
        c0, r0, c1, r1 = bounds
        scale = 1
        while max(c1 - c0, r1 - r0) > (self.size - 2 * RECENTRE_CONTEXT) * scale and scale < self.max_scale:
            scale *= 2
        quantum = RECENTRE_CONTEXT // 2 * scale
        origin = []
        for length, lo, hi in ((self.width, c0, c1), (self.height, r0, r1)):
            if self._axis_len(length, scale) is not None:
                origin.append(0)
                continue
            o = quantum * round(((lo + hi) / 2 - self.size * scale / 2) / quantum)
            origin.append(int(min(max(o, 0), length - self.size * scale)))
        return self._crop(origin[0], origin[1], scale)

    def interior_edges(self, crop: CropSpec) -> Tuple[bool, bool, bool, bool]:
        """``(left, top, right, bottom)``: True where the raster continues past the crop's edge."""
        c0, r0, c1, r1 = crop.source_bounds
        return c0 > 0, r0 > 0, c1 < self.width, r1 < self.height


def touches_interior_edge(mask: np.ndarray, edges: Sequence[bool]) -> bool:
    """True if the ``[H, W]`` mask has pixels on a frame edge beyond which the raster continues."""
    left, top, right, bottom = edges
    return bool(
        (left and mask[:, 0].any())
        or (top and mask[0, :].any())
        or (right and mask[:, -1].any())
        or (bottom and mask[-1, :].any())
    )


def mask_bounds(mask: np.ndarray, crop: CropSpec) -> Bounds:
    """Bounding box of a non-empty ``[H, W]`` frame mask, in source pixels."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    s = crop.scale
    return (crop.col0 + cols[0] * s, crop.row0 + rows[0] * s,
            crop.col0 + (cols[-1] + 1) * s, crop.row0 + (rows[-1] + 1) * s)


def _extent_bounds(source, extent: Optional[Extent]) -> Optional[Bounds]:
    """Source pixel bounds of ``extent`` clipped to the raster (None: no overlap)."""
    if extent is None:
        return 0.0, 0.0, float(source.width), float(source.height)
    c0, r0, c1, r1 = extent_to_pixel_bounds(source.geotransform, extent)
    c0, r0 = max(c0, 0.0), max(r0, 0.0)
    c1, r1 = min(c1, float(source.width)), min(r1, float(source.height))
    return None if c1 <= c0 or r1 <= r0 else (c0, r0, c1, r1)


def crops_in_extent(source, extent: Optional[Extent] = None, stride: int = DEFAULT_STRIDE,
                    support: bool = False) -> List[CropSpec]:
    """Scale-1 grid crops covering ``extent`` (raster CRS map units; None = whole raster), or with
    ``support`` the coarser support crops covering it (see :meth:`CropGrid.support_crops`).

    ``source`` needs ``width``, ``height`` and ``geotransform`` (a RasterSource).
    An extent that misses the raster gives an empty list.
    """
    grid = CropGrid(source.width, source.height, stride=stride)
    bounds = _extent_bounds(source, extent)
    if bounds is None:
        return []
    return list(grid.support_crops(bounds) if support else grid.crops(bounds))
