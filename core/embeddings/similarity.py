"""Find objects like given examples: embedding signatures, cosine maps over crops, peaks with NMS.

Each example's *signature* (see :mod:`core.embeddings.signatures`) is the mean embedding vector
under its polygon. Every cell of the crops of
an extent is scored by its cosine similarity to each signature; the per-crop maps are
stitched onto one raster grid (see :mod:`core.embeddings.features`). *Peaks* are local maxima above a
threshold, taken best first with non-maximum suppression at the example's scale (a disc of
half its size), away from the examples themselves. :func:`segment_peaks` turns each peak
into an object with SAM (a single include point), keeping the candidate mask whose area is
closest to the example's, and drops a result whose box overlaps a better one (IoU > 0.7).

GDAL only (no QGIS): safe in a worker thread. Polygons are WKB in the raster CRS; pixel
positions are continuous source pixels ``(col, row)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..polygon_exporter import mask_to_polygons
from ..raster.crops import CropSpec, mask_bounds
from ..raster.geo import Extent, GeoTransform, pixel_to_map
from ..segment.amg_utils import box_iou
from ..segment.mask_ops import RefineParams
from ..segment.segmenter import RasterSegmenter, Segmentation
from .features import Blender, CellGrid, CropFeatures, FeatureFn, Window, image_features, raster_bounds
from .signatures import (
    Example,
    Signature,
    SimilarityError,
    cells_geotransform,
    coverage,
    example_crops,
    example_geometry,
    signature,
)

SegmentFn = Callable[[Tuple[float, float]], Segmentation]  # one include point (raster CRS) -> masks
DUPLICATE_IOU = 0.7  # a result whose box overlaps a better one's more than this is the same object


@dataclass(frozen=True)
class Peak:
    """A place that looks like an example: the centre ``(col, row)`` of a cell, source pixels."""

    col: float
    row: float
    similarity: float
    example: int  # index of the signature it is most similar to


@dataclass
class ScoreMap:
    """Cosine similarity to each signature on a window of the raster's cells.

    Attributes:
        values: ``[K, rows, cols]`` float32 in [-1, 1]; NaN where no crop covers a cell.
        grid, window: the cells (see :class:`core.embeddings.features.CellGrid`).
    """

    values: np.ndarray
    grid: CellGrid
    window: Window

    @property
    def best(self) -> np.ndarray:
        """``[rows, cols]`` the highest similarity to any signature (NaN where uncovered)."""
        filled = np.where(np.isnan(self.values), -np.inf, self.values)
        out = filled.max(axis=0)
        out[np.isinf(out)] = np.nan
        return out

    def geotransform(self, raster_gt: GeoTransform) -> GeoTransform:
        return self.grid.geotransform(raster_gt, self.window)


@dataclass(frozen=True)
class SimilarObject:
    """A found object: polygon ``wkb`` (raster CRS), predicted IoU ``score``, ``similarity`` of its peak."""

    wkb: bytes
    score: float
    similarity: float
    example: Example
    point: Tuple[float, float]  # the prompt, raster CRS


def score_map(signatures: Sequence[Signature], crops: Sequence[CropSpec], features: FeatureFn, grid: CellGrid,
              window: Window, is_canceled: Callable[[], bool] = lambda: False,
              on_progress: Optional[Callable[[float], None]] = None) -> ScoreMap:
    """Cosine similarity of every cell of ``window`` to each signature, stitched over ``crops``."""
    sig = np.stack([s.vector for s in signatures]).astype(np.float32)  # [K, C]
    blender = Blender(grid, window, len(signatures))
    for i, crop in enumerate(crops):
        if is_canceled():
            break
        f = features(crop)
        c, rows, cols = f.values.shape
        flat = f.values.reshape(c, -1)
        norms = np.maximum(np.sqrt(np.einsum("cn,cn->n", flat, flat)), 1e-12)
        blender.add(crop, ((sig @ flat) / norms).reshape(-1, rows, cols), f.cell)
        if on_progress is not None:
            on_progress((i + 1) / len(crops))
    return ScoreMap(blender.result(), grid, window)


def _box_mean(values: np.ndarray, k: int) -> np.ndarray:
    """Mean of each ``k x k`` window of ``[rows, cols]`` cells (NaN ignored), at the window
    starting ``(k - 1) // 2`` cells before each cell; NaN where under half of it is covered."""
    if k <= 1:
        return values.copy()
    valid = ~np.isnan(values)
    lo = (k - 1) // 2
    pads = ((lo + 1, k - lo - 1), (lo + 1, k - lo - 1))
    s = np.pad(np.where(valid, values, 0.0).astype(np.float64), pads).cumsum(0).cumsum(1)
    n = np.pad(valid.astype(np.float64), pads).cumsum(0).cumsum(1)
    h, w = values.shape

    def window(a: np.ndarray) -> np.ndarray:
        return a[k:k + h, k:k + w] - a[:h, k:k + w] - a[k:k + h, :w] + a[:h, :w]

    total, count = window(s), window(n)
    out = np.full(values.shape, np.nan, np.float32)
    np.divide(total, count, out=out, where=count >= 0.5 * k * k, casting="unsafe")
    return out


def _local_maxima(best: np.ndarray) -> np.ndarray:
    """``[rows, cols]`` True where a cell is >= its 8 neighbours (NaN counts as -inf)."""
    v = np.where(np.isnan(best), -np.inf, best)
    padded = np.pad(v, 1, constant_values=-np.inf)
    h, w = v.shape
    ok = np.isfinite(v)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                ok &= v >= padded[dy : dy + h, dx : dx + w]
    return ok


def find_peaks(scores: ScoreMap, signatures: Sequence[Signature], threshold: float, max_objects: int,
               raster_gt: GeoTransform) -> List[Peak]:
    """Places at least ``threshold`` similar to an example, best first, at most ``max_objects``.

    Each signature's map is first averaged over a square of the example's size (its
    footprint in cells), so an object gives one peak at its centre and the similarity of a
    peak is that of the whole footprint. Local maxima of the best of those maps are taken
    greedily; one closer to a better one (or to an example's centre) than its example's
    radius (:meth:`Signature.radius`) is suppressed, as is any cell touching an example.
    """
    win, grid = scores.window, scores.grid
    sizes = [max(1, round(math.sqrt(s.size_px[0] * s.size_px[1] / (grid.cell_w * grid.cell_h))))
             for s in signatures]
    smooth = np.stack([_box_mean(v, k) for v, k in zip(scores.values, sizes)])
    filled = np.nan_to_num(smooth, nan=-np.inf)
    which, best = filled.argmax(axis=0), filled.max(axis=0)
    exclude = coverage([example_geometry(s.example) for s in signatures],
                       cells_geotransform(raster_gt, win.col0 * grid.cell_w, win.row0 * grid.cell_h,
                                           grid.cell_w, grid.cell_h), win.rows, win.cols) > 0
    ii, jj = np.nonzero(_local_maxima(np.where(np.isinf(best), np.nan, best)) & (best >= threshold) & ~exclude)
    order = np.argsort(-best[ii, jj], kind="stable")
    taken = [(s.centre[0], s.centre[1], s.radius(grid)) for s in signatures]
    peaks: List[Peak] = []
    for k in order:
        if len(peaks) >= max_objects:
            break
        i, j, e = ii[k], jj[k], int(which[ii[k], jj[k]])
        centre = 0.5 if sizes[e] % 2 else 1.0  # an even window is centred on a cell corner
        col, row = (win.col0 + j + centre) * grid.cell_w, (win.row0 + i + centre) * grid.cell_h
        r = signatures[e].radius(grid)
        if any(math.hypot(col - c, row - q) < max(r, rr) for c, q, rr in taken):
            continue
        taken.append((col, row, r))
        peaks.append(Peak(col, row, float(best[i, j]), e))
    return peaks


def choose_mask(masks: np.ndarray, scores: np.ndarray, scale: int, area_px: float) -> Optional[int]:
    """Index of the candidate mask ``[K, H, W]`` (pixels ``scale`` source pixels wide) whose area
    is closest (in ratio) to ``area_px``, the higher score breaking ties; None if all are empty."""
    areas = masks.reshape(masks.shape[0], -1).sum(axis=1).astype(np.float64) * scale * scale
    if not (areas > 0).any():
        return None
    misfit = np.where(areas > 0, np.abs(np.log(np.maximum(areas, 1.0) / max(area_px, 1.0))), np.inf)
    return int(np.lexsort((-np.asarray(scores, np.float64), np.round(misfit, 9)))[0])


def segment_peaks(peaks: Sequence[Peak], signatures: Sequence[Signature], segment: SegmentFn,
                  raster_gt: GeoTransform, refine: RefineParams = RefineParams(),  # noqa: B008 (frozen)
                  is_canceled: Callable[[], bool] = lambda: False,
                  on_progress: Optional[Callable[[float], None]] = None) -> List[SimilarObject]:
    """One object per peak (best first): SAM on the peak as an include point, the candidate
    mask of the example's size, duplicates (box IoU > :data:`DUPLICATE_IOU`) dropped."""
    found: List[SimilarObject] = []
    boxes: List[np.ndarray] = []
    for n, peak in enumerate(peaks, 1):
        if is_canceled():
            break
        sig = signatures[peak.example]
        (x, y), = pixel_to_map(raster_gt, [(peak.col, peak.row)])
        seg = segment((float(x), float(y)))
        k = choose_mask(seg.masks, seg.scores, seg.crop.scale, sig.area_px)
        if k is not None:
            box = np.array(mask_bounds(seg.masks[k], seg.crop), np.float64)
            if not boxes or not (box_iou(box, np.stack(boxes)) > DUPLICATE_IOU).any():
                polygons = mask_to_polygons(seg.masks[k], seg.geotransform, seg.crs_wkt,
                                            refine.scaled(seg.crop.scale))
                boxes.append(box)
                found.append(SimilarObject(polygons.wkb, float(seg.scores[k]), peak.similarity, sig.example,
                                           (float(x), float(y))))
        if on_progress is not None:
            on_progress(n / len(peaks))
    return found



@dataclass(frozen=True)
class SimilarParams:
    """Settings of one search.

    Attributes:
        threshold: least cosine similarity of a peak, -1 to 1.
        max_objects: most objects returned (the best peaks).
        refine: outline refinement of the found objects (source pixels).
    """

    threshold: float = 0.75
    max_objects: int = 100
    refine: RefineParams = RefineParams()  # noqa: RUF009 (frozen)

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0 or self.max_objects < 1:
            raise SimilarityError(f"the similarity threshold must be between -1 and 1 and the number of "
                                  f"objects at least 1, got {self.threshold} and {self.max_objects}")


class SimilarSearch:
    """One search for objects like ``examples`` over ``extent`` of ``segmenter``'s raster.

    Encode :attr:`crops` first (they must all be cached), then call :meth:`score`,
    :meth:`peaks` and :meth:`objects`.

    Args:
        segmenter: the raster, models and cache.
        examples: polygons in the raster CRS.
        extent: raster CRS; None = the whole raster.
    """

    def __init__(self, segmenter: RasterSegmenter, examples: Sequence[Example], extent: Optional[Extent],
                 params: SimilarParams = SimilarParams()) -> None:
        if not examples:
            raise SimilarityError("no example: select one or more saved objects to find more of")
        self.segmenter, self.examples, self.params = segmenter, list(examples), params
        src = segmenter.source
        self.extent_crops = segmenter.crops_in_extent(extent)
        if not self.extent_crops:
            raise SimilarityError(f"the extent does not overlap the raster '{src.name}'")
        self._bounds = raster_bounds(src.width, src.height, src.geotransform, extent)
        needed = list(self.extent_crops)
        for example in self.examples:
            needed += example_crops(segmenter.grid, src.geotransform, example)
        self.crops: List[CropSpec] = list(dict.fromkeys(needed))
        self.signatures: List[Signature] = []

    def features(self, crop: CropSpec) -> CropFeatures:
        """``crop``'s cached features (raises NotEncodedError if it is not cached)."""
        return image_features(self.segmenter.embedding(crop))

    def score(self, is_canceled: Callable[[], bool] = lambda: False,
              on_progress: Optional[Callable[[float], None]] = None) -> ScoreMap:
        """Signatures of the examples, then the stitched similarity over the extent."""
        src = self.segmenter.source
        self.signatures = [signature(e, self.segmenter.grid, src.geotransform, self.features)
                           for e in self.examples]
        first = self.extent_crops[0]
        grid = CellGrid.of(first, self.features(first), src.width, src.height)
        return score_map(self.signatures, self.extent_crops, self.features, grid, grid.window(self._bounds),
                         is_canceled, on_progress)

    def peaks(self, scores: ScoreMap) -> List[Peak]:
        """The places to segment, best first (see :func:`find_peaks`)."""
        return find_peaks(scores, self.signatures, self.params.threshold, self.params.max_objects,
                          self.segmenter.source.geotransform)

    def objects(self, peaks: Sequence[Peak], segment: SegmentFn, is_canceled: Callable[[], bool] = lambda: False,
                on_progress: Optional[Callable[[float], None]] = None) -> List[SimilarObject]:
        """The objects at ``peaks`` (see :func:`segment_peaks`)."""
        return segment_peaks(peaks, self.signatures, segment, self.segmenter.source.geotransform,
                             self.params.refine, is_canceled, on_progress)
