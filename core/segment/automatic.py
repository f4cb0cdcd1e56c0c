"""Automatic mask generation ("segment everything") for any family's ONNX decoder, in numpy only.

Follows ``segment_anything``'s ``SamAutomaticMaskGenerator`` (automatic_mask_generator.py and
utils/amg.py): a grid of single include points over each crop, three candidate masks per
point, masks kept when their predicted IoU is ``> pred_iou_thresh`` and their stability score
(IoU of the masks thresholded at ``0 +/- offset``) is ``>= stability_score_thresh``, masks near
a crop edge that is not an edge of the image dropped, box NMS inside each crop then across
crops, and optionally small holes and islands removed (``min_mask_region_area``).

Deviations, each for CPU cost or because the crops are tiles of a large raster:

- Only masks that pass the predicted-IoU filter are upscaled, and only over the window where
  their logits can exceed ``-offset``; scores and masks are exactly Meta's (the upscale is the
  family's own, ``Sam.postprocess_masks`` for SAM, given as matrices by the decoder's
  :class:`PointRunner`), at a fraction of the cost of upscaling every candidate.
- Crops are the encoder's tiles (see :mod:`core.raster.crops`). Where tiles overlap, a grid point is
  decoded only by the tile whose centre is nearest (Meta decodes it in every crop).
- A mask near an interior tile edge (Meta drops it) is kept as a *part*; parts from two tiles
  that agree where both tiles see the image (IoU >= :data:`MERGE_IOU`) merge into one object,
  so an object larger than the overlap still comes out whole and once. A part that merges
  with nothing is dropped, as in Meta's code.
- NMS across tiles prefers the higher predicted IoU (Meta prefers the smaller crop; tiles
  all have one size here).
- Small regions are found without OpenCV (see :mod:`core.segment.amg_utils`).

Coordinates are raster pixels ``(x, y)`` = ``(col, row)`` at scale 1; prompt points use the
family's reference convention, as Meta's point grid does with its predictor. Boxes are
``(x0, y0, x1, y1)``: end-exclusive for crops and regions, inclusive for masks (as
``batched_mask_to_box``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import SegmentationError
from ..families.base import Matrices, PointRunner, Shape
from .amg_utils import UnionFind, near_crop_edge, nms, point_grid, remove_small_regions, stability_score

Box = Tuple[int, int, int, int]

MERGE_IOU = 0.5  # two tiles' parts of one object agree far above this where both see it


class AmgParamError(SegmentationError, ValueError):
    """A generator setting is out of range."""


@dataclass(frozen=True)
class AmgParams:
    """``SamAutomaticMaskGenerator`` settings, with Meta's defaults (see its docstring)."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_nms_thresh: float = 0.7
    min_mask_region_area: int = 0

    def __post_init__(self) -> None:
        fractions = ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh")
        bad = [f"{name} must be between 0 and 1, got {getattr(self, name)}"
               for name in fractions if not 0.0 <= getattr(self, name) <= 1.0]
        if not 1 <= self.points_per_side <= 1024 or self.points_per_batch < 1:
            bad.append(f"points per side must be 1 to 1024 and points per batch at least 1, got "
                       f"{self.points_per_side} and {self.points_per_batch}")
        if self.stability_score_offset <= 0 or self.min_mask_region_area < 0:
            bad.append("the stability offset must be > 0 and the minimum region area >= 0")
        if bad:
            raise AmgParamError("; ".join(bad))


@dataclass(frozen=True)
class CropRegion:
    """One encoded tile and the part of it that is segmented.

    Attributes:
        origin: ``(col, row)`` of the frame's top-left pixel in the raster.
        frame: ``(h, w)`` of the image the encoder saw.
        region: ``(x0, y0, x1, y1)`` end-exclusive, raster pixels: the frame's part inside the extent.
    """

    origin: Tuple[int, int]
    frame: Shape
    region: Box

    @property
    def centre(self) -> Tuple[float, float]:
        return self.origin[0] + self.frame[1] / 2, self.origin[1] + self.frame[0] / 2

    @property
    def region_in_frame(self) -> Box:
        x0, y0, x1, y1 = self.region
        ox, oy = self.origin
        return x0 - ox, y0 - oy, x1 - ox, y1 - oy


@dataclass
class MaskRecord:
    """One object: a mask cropped to its bounding box, placed in the raster.

    Attributes:
        mask: ``[h, w]`` bool, True on its first/last row and column.
        col0, row0: raster pixel of ``mask[0, 0]``.
        score: predicted IoU (the mean of the parts' for a merged object).
        stability: stability score (the least of the parts' for a merged object).
        point: the prompt ``(x, y)`` that produced it.
        crop: index of its tile in the list given to :func:`crop_masks`.
    """

    mask: np.ndarray
    col0: int
    row0: int
    score: float
    stability: float
    point: Tuple[float, float] = (0.0, 0.0)
    crop: int = 0

    @property
    def bounds(self) -> Box:
        """``(x0, y0, x1, y1)`` end-exclusive, raster pixels."""
        h, w = self.mask.shape
        return self.col0, self.row0, self.col0 + w, self.row0 + h

    @property
    def box(self) -> np.ndarray:
        """``(x0, y0, x1, y1)`` inclusive (as ``batched_mask_to_box``), raster pixels."""
        return np.array(self.bounds, np.float64) - (0, 0, 1, 1)

    def window(self, box: Box) -> np.ndarray:
        """The mask over the end-exclusive raster box ``box``, False outside the record."""
        x0, y0, x1, y1 = box
        out = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), bool)
        h, w = self.mask.shape
        cx0, cy0 = max(x0, self.col0), max(y0, self.row0)
        cx1, cy1 = min(x1, self.col0 + w), min(y1, self.row0 + h)
        if cx1 > cx0 and cy1 > cy0:
            out[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = self.mask[
                cy0 - self.row0 : cy1 - self.row0, cx0 - self.col0 : cx1 - self.col0]
        return out


def tight(mask: np.ndarray, col0: int, row0: int) -> Optional[Tuple[np.ndarray, int, int]]:
    """``mask`` cropped to its True pixels with its new top-left, or None if it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], col0 + int(cols[0]), row0 + int(rows[0])


# --- one crop ---


class _Upscaler:
    """The family's mask upscaling for one crop, evaluated only where it can exceed a floor.

    With non-negative weights (bilinear: SAM, SAM 2.1) each upscaled logit is a weighted mean of
    low-res logits, so it can exceed ``floor`` only where a low-res logit above ``floor`` has
    weight: that bounds the rows and columns computed, and the values there are exact. Bicubic
    weights (EfficientSAM) have negative lobes, which can lift a pixel above ``floor`` next to a
    steep edge with no low-res logit above it nearby: the whole region is computed then.
    """

    def __init__(self, crop: CropRegion, matrices: Matrices) -> None:
        rows, cols = matrices  # [h, 256], [w, 256] for the crop's frame
        x0, y0, x1, y1 = crop.region_in_frame
        self.rows, self.cols = rows[y0:y1], cols[x0:x1]
        self.col0, self.row0 = crop.region[0], crop.region[1]
        self.windowed = bool((self.rows >= 0).all() and (self.cols >= 0).all())

    def logits(self, low: np.ndarray, floor: float) -> Optional[Tuple[np.ndarray, int, int]]:
        """``[256, 256]`` logits -> upscaled logits over the region's pixels that can exceed
        ``floor`` (all others are <= ``floor``) and the window's raster top-left; None if none."""
        if not self.windowed:
            logits = self.rows @ low.astype(np.float32) @ self.cols.T
            return (logits, self.col0, self.row0) if (logits > floor).any() else None
        above = low > floor
        a = np.flatnonzero(above.any(axis=1))
        b = np.flatnonzero(above.any(axis=0))
        if a.size == 0:
            return None
        r = np.flatnonzero(self.rows[:, a[0] : a[-1] + 1].any(axis=1))
        c = np.flatnonzero(self.cols[:, b[0] : b[-1] + 1].any(axis=1))
        if r.size == 0 or c.size == 0:
            return None
        logits = self.rows[r[0] : r[-1] + 1] @ low.astype(np.float32) @ self.cols[c[0] : c[-1] + 1].T
        return logits, self.col0 + int(c[0]), self.row0 + int(r[0])


def crop_region(origin: Tuple[int, int], frame: Shape, extent_box: Box) -> Optional[CropRegion]:
    """The tile at ``origin`` (raster pixels) of size ``frame`` ``(h, w)``, clipped to
    ``extent_box`` (end-exclusive raster pixels); None if it misses it."""
    (col0, row0), (h, w) = origin, frame
    ex0, ey0, ex1, ey1 = extent_box
    region = (max(col0, ex0), max(row0, ey0), min(col0 + w, ex1), min(row0 + h, ey1))
    if region[2] <= region[0] or region[3] <= region[1]:
        return None
    return CropRegion((int(col0), int(row0)), (int(h), int(w)), tuple(int(v) for v in region))


def crop_points(crops: Sequence[CropRegion], index: int, n_per_side: int) -> np.ndarray:
    """``[N, 2]`` prompts of crop ``index``: Meta's grid over its region, less the points
    whose nearest tile centre (L-inf) is another tile's (that tile holds them too)."""
    x0, y0, x1, y1 = crops[index].region
    pts = point_grid(n_per_side) * (x1 - x0, y1 - y0) + (x0, y0)
    centres = np.array([c.centre for c in crops])
    dist = np.abs(pts[:, None, :] - centres[None]).max(axis=2)
    return pts[dist.argmin(axis=1) == index]


def crop_masks(decode: PointRunner, crops: Sequence[CropRegion], index: int, points: np.ndarray,
               extent_box: Box, params: AmgParams,
               is_canceled: Callable[[], bool] = lambda: False,
               on_progress: Optional[Callable[[float], None]] = None,
               ) -> Tuple[List[MaskRecord], List[MaskRecord]]:
    """Meta's ``_process_crop`` for crop ``index``: ``(whole masks, parts at an interior edge)``.

    Args:
        decode: runs the decoder on this crop's embedding (``SamDecoder.point_runner``): frame
            ``(x, y)`` of one include point -> (predicted IoUs [K], low-res logits [K, 256, 256]).
        points: ``[N, 2]`` raster prompts (:func:`crop_points`).
        extent_box: the image's edges (end-exclusive raster pixels): masks may touch them.
        is_canceled: checked before each decoder run; when it turns True, returns ``([], [])``.
        on_progress: called with the fraction of points done, every ``points_per_batch`` points
            (the decoder itself takes one point per run).
    """
    crop = crops[index]
    up = _Upscaler(crop, decode.matrices)
    offset = params.stability_score_offset
    whole: List[MaskRecord] = []
    parts: List[MaskRecord] = []
    for n, point in enumerate(points, 1):
        if is_canceled():
            return [], []
        scores, low = decode(np.asarray(point, np.float64) - crop.origin)
        keep = scores > params.pred_iou_thresh if params.pred_iou_thresh > 0 else np.ones(scores.shape, bool)
        for k in np.flatnonzero(keep):
            # Pixels outside the window are <= -offset: they count in neither term of the score.
            found = up.logits(low[k], -offset)
            if found is None:
                continue
            stability = float(stability_score(found[0], 0.0, offset))
            mask = tight(found[0] > 0.0, found[1], found[2])
            if mask is None or stability < params.stability_score_thresh:
                continue
            rec = MaskRecord(*mask, float(scores[k]), stability, (float(point[0]), float(point[1])), index)
            (parts if near_crop_edge(rec.box, crop.region, extent_box)[0] else whole).append(rec)
        if on_progress is not None and (n % params.points_per_batch == 0 or n == len(points)):
            on_progress(n / len(points))
    return _nms(whole, params.box_nms_thresh), _nms(parts, params.box_nms_thresh)


# --- across crops ---


def _nms(records: List[MaskRecord], thresh: float, scores: Optional[Sequence[float]] = None
         ) -> List[MaskRecord]:
    if not records:
        return []
    s = [r.score for r in records] if scores is None else scores
    return [records[i] for i in nms(np.stack([r.box for r in records]), np.asarray(s), thresh)]


def _intersection(a: Sequence[float], b: Sequence[float]) -> Box:
    return (int(max(a[0], b[0])), int(max(a[1], b[1])), int(min(a[2], b[2])), int(min(a[3], b[3])))


def merge_parts(crops: Sequence[CropRegion], parts: List[MaskRecord]) -> List[MaskRecord]:
    """Objects assembled from parts of different tiles that agree (IoU >= :data:`MERGE_IOU`)
    over the pixels both tiles see; parts that agree with no other tile's are dropped."""
    sets = UnionFind(len(parts))
    for i, p in enumerate(parts):
        for j in range(i + 1, len(parts)):
            q = parts[j]
            if p.crop == q.crop:
                continue
            # Outside the two masks' boxes both windows are empty: no need to look there.
            zone = _intersection(_intersection(crops[p.crop].region, crops[q.crop].region),
                                 _span([p.bounds, q.bounds]))
            if zone[2] <= zone[0] or zone[3] <= zone[1]:
                continue
            a, b = p.window(zone), q.window(zone)
            union = np.count_nonzero(a | b)
            if union and np.count_nonzero(a & b) / union >= MERGE_IOU:
                sets.union(i, j)
    groups: dict = {}
    for i in range(len(parts)):
        groups.setdefault(sets.find(i), []).append(parts[i])
    return [_union(g) for g in groups.values() if len({r.crop for r in g}) > 1]


def _span(boxes: Sequence[Box]) -> Box:
    b = np.array(boxes, np.int64)
    return int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max())


def _union(group: List[MaskRecord]) -> MaskRecord:
    box = _span([r.bounds for r in group])
    mask = np.zeros((box[3] - box[1], box[2] - box[0]), bool)
    for r in group:
        mask |= r.window(box)
    return MaskRecord(mask, box[0], box[1], float(np.mean([r.score for r in group])),
                      min(r.stability for r in group), group[0].point, group[0].crop)


def remove_small(records: List[MaskRecord], min_area: int, nms_thresh: float) -> List[MaskRecord]:
    """Meta's ``postprocess_small_regions``: fill small holes, drop small islands, then NMS
    again preferring the masks that needed no change."""
    cleaned, unchanged = [], []
    for r in records:
        padded = np.pad(r.mask, 1)
        m, holes = remove_small_regions(padded, min_area, "holes", outside=True)
        m, islands = remove_small_regions(m, min_area, "islands")
        mask, col0, row0 = tight(m, r.col0 - 1, r.row0 - 1)  # never empty: an island is always kept
        cleaned.append(MaskRecord(mask, col0, row0, r.score, r.stability, r.point, r.crop))
        unchanged.append(0.0 if holes or islands else 1.0)
    return _nms(cleaned, nms_thresh, unchanged)


def combine(crops: Sequence[CropRegion], whole: List[MaskRecord], parts: List[MaskRecord],
            params: AmgParams) -> List[MaskRecord]:
    """Final objects of all crops: parts merged, duplicates across tiles removed by NMS,
    then small regions removed when ``min_mask_region_area > 0``. Best score first."""
    records = whole + merge_parts(crops, parts)
    if len(crops) > 1:
        records = _nms(records, params.crop_nms_thresh)
    if params.min_mask_region_area > 0:
        records = remove_small(records, params.min_mask_region_area,
                               max(params.box_nms_thresh, params.crop_nms_thresh))
    return records
