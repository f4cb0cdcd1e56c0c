"""Meta's automatic-mask-generator building blocks (``segment_anything/utils/amg.py``) in numpy.

Point grid, stability score, box NMS with torchvision's semantics, the crop-edge test, and
small-region removal with an 8-connected labelling written here (Meta's uses OpenCV). Boxes
are ``(x0, y0, x1, y1)`` pixels; masks are ``[H, W]`` bool.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

EDGE_ATOL = 20.0  # Meta's is_box_near_crop_edge tolerance, pixels


def point_grid(n_per_side: int) -> np.ndarray:
    """``[n*n, 2]`` points evenly spaced in ``[0, 1]^2`` (``build_point_grid``), row by row."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    return np.stack(np.meshgrid(side, side), axis=-1).reshape(-1, 2)


def stability_score(logits: np.ndarray, threshold: float = 0.0, offset: float = 1.0) -> np.ndarray:
    """``[..., H, W]`` logits -> ``[...]`` IoU of the masks at ``threshold + offset`` and
    ``threshold - offset`` (the first lies inside the second); 0 when both are empty."""
    inter = (logits > threshold + offset).sum(axis=(-1, -2), dtype=np.int64)
    union = (logits > threshold - offset).sum(axis=(-1, -2), dtype=np.int64)
    return np.divide(inter, union, out=np.zeros(inter.shape, np.float64), where=union > 0)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``[4]`` box with ``[N, 4]`` boxes, areas as torchvision (``(x1-x0)*(y1-y0)``)."""
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area + areas - inter)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Indices kept by greedy NMS, best score first (``torchvision.ops.nms``: a box is
    suppressed when its IoU with a kept one is ``> iou_thresh``; NaN never suppresses)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    alive = np.ones(len(order), bool)
    keep = []
    for k, i in enumerate(order):
        if not alive[k]:
            continue
        keep.append(i)
        rest = order[k + 1 :]
        alive[k + 1 :] &= ~(box_iou(boxes[i], boxes[rest]) > iou_thresh)
    return np.array(keep, np.int64)


def near_crop_edge(boxes: np.ndarray, crop_box: Sequence[float], orig_box: Sequence[float],
                   atol: float = EDGE_ATOL) -> np.ndarray:
    """``[N]`` True for inclusive boxes near an edge of ``crop_box`` that is not an edge of
    ``orig_box`` (``is_box_near_crop_edge``); both boxes end-exclusive, same frame."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    near_crop = np.isclose(b, np.asarray(crop_box, np.float64)[None], rtol=0, atol=atol)
    near_orig = np.isclose(b, np.asarray(orig_box, np.float64)[None], rtol=0, atol=atol)
    return (near_crop & ~near_orig).any(axis=1)


class UnionFind:
    """Disjoint sets of ``0..n-1``; a set's root is its smallest member."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def label_components(mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """8-connected components of a ``[H, W]`` bool mask (``cv2.connectedComponents(m, 8)``).

    Returns ``labels [H, W]`` int32 (0 off the mask, 1..n in raster order of each component's
    first pixel) and ``sizes [n]`` in pixels. Works on horizontal runs: a union-find over the
    runs of neighbouring rows that touch.
    """
    m = np.asarray(mask, bool)
    h, w = m.shape
    labels = np.zeros((h, w), np.int32)
    edges = np.diff(np.pad(m, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]  # end-exclusive; same row-major order as the starts
    n = rows.size
    if n == 0:
        return labels, np.zeros(0, np.int64)
    stride = w + 2  # row keys never collide
    below = (rows + 1) * stride
    # Runs of the next row touching run a (8-connected): start <= end_a and end >= start_a.
    lo = np.searchsorted(rows * stride + ends, below + starts, side="left")
    hi = np.searchsorted(rows * stride + starts, below + ends, side="right")
    counts = np.maximum(hi - lo, 0)
    first = np.repeat(np.arange(n), counts)
    second = np.repeat(lo, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    sets = UnionFind(n)
    for a, b in zip(first.tolist(), second.tolist()):
        sets.union(a, b)
    roots = np.array([sets.find(i) for i in range(n)])
    run_label = np.unique(roots, return_inverse=True)[1].astype(np.int32) + 1
    lengths = ends - starts
    labels[m] = np.repeat(run_label, lengths)
    return labels, np.bincount(run_label - 1, weights=lengths).astype(np.int64)


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str,
                         outside: bool = False) -> Tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) smaller than ``area_thresh``
    pixels, as Meta's ``remove_small_regions``; returns the mask and whether it changed.

    Args:
        outside: the mask is padded with a background ring: the background component of pixel
            ``(0, 0)`` is the outside of the object, never a hole.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode is 'holes' or 'islands', got {mode!r}")
    holes = mode == "holes"
    labels, sizes = label_components(mask ^ holes)
    small = sizes < area_thresh
    if holes and outside and labels[0, 0]:
        small[labels[0, 0] - 1] = False
    if not small.any():
        return mask, False
    lut = np.zeros(sizes.size + 1, bool)
    if holes:
        lut[0] = True  # label 0 is the mask itself here
        lut[1:] = small
    elif small.all():  # every island is small: keep the largest
        lut[int(np.argmax(sizes)) + 1] = True
    else:
        lut[1:] = ~small
    return lut[labels], True
