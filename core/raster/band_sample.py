"""Bounded, data-seeking pixel samples of one GDAL band, for the percentile stretch.

A large band is never read whole. The sample is the band, or its largest overview, of at most
:data:`STATS_MAX_PX` pixels read whole; else about :data:`STATS_BLOCK_PX` pixels of evenly
spread blocks. While fewer than :data:`STATS_MIN_VALID` valid pixels have been found, rounds of
four times more blocks follow, up to :data:`STATS_MAX_READ_PX` pixels read (or, as a safety net,
:data:`STATS_MAX_SECONDS`).

Where GDAL knows which parts of a raster hold data (``GetDataCoverageStatus``: VRT, sparse
GeoTIFF), blocks are chosen only among those parts, in proportion to the data each holds: a
100,000 px VRT over one small tile finds the tile at once, and the area no source covers (which
reads as 0 when the VRT declares no nodata) never counts as data. The choice is deterministic,
so the same raster always gets the same stretch (it is part of the embedding cache key).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Set, Tuple

import numpy as np

STATS_MAX_PX = 4_000_000  # a band (or overview) this small is read whole for the stretch statistics
STATS_BLOCK_PX = 1_000_000  # else about this many pixels of evenly spread blocks are sampled first
STATS_MIN_VALID = 100_000  # fewer valid pixels than this: sample more blocks
STATS_MAX_READ_PX = 16_000_000  # never read more than this many pixels for the statistics
STATS_MAX_SECONDS = 15.0  # safety net for very slow sources; the pixel bound normally comes first
_MIN_PART = 4  # a partly covered block is split down to windows this small

Window = Tuple[int, int, int, int]  # xoff, yoff, xsize, ysize in pixels
Blocks = Tuple[Window, ...]  # one block as the windows to read (its parts holding data)
ReadFn = Callable[[Any, Window], Tuple[np.ndarray, np.ndarray]]  # (band, window) -> (values, valid)
_DATA, _EMPTY, _UNKNOWN = 2, 4, 1  # GDAL_DATA_COVERAGE_STATUS_DATA / _EMPTY / _UNIMPLEMENTED


@dataclass(frozen=True)
class BandSample:
    """What the statistics sample of a band found.

    Attributes:
        values: 1-D valid values read (nodata, NaN, inf and masked pixels left out).
        pixels_read: pixels read in all.
        windows_read: GDAL reads made.
        complete: every pixel that may hold data was read (at the sampled resolution).
        limit: ``"pixels"`` or ``"time"`` when a bound stopped the sampling, else None.
    """

    values: np.ndarray
    pixels_read: int
    windows_read: int
    complete: bool
    limit: Optional[str]

    @property
    def valid(self) -> int:
        return int(self.values.size)


def _coverage(band: Any, win: Window) -> Tuple[int, float]:
    """``(flags, percent of data)`` of a window; flags ``_UNKNOWN`` where the driver cannot tell."""
    try:
        flags, pct = band.GetDataCoverageStatus(*win)
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return _UNKNOWN, 100.0
    return int(flags), float(pct)


def _has_data(flags: int) -> bool:
    return bool(flags & (_DATA | _UNKNOWN)) or not flags & _EMPTY


def _block(band: Any) -> Tuple[int, int]:
    bw, bh = band.GetBlockSize()
    return max(1, min(int(bw), band.XSize)), max(1, min(int(bh), band.YSize))


def spread_blocks(width: int, height: int, block: Tuple[int, int]) -> List[Window]:
    """Evenly spread whole blocks totalling about :data:`STATS_BLOCK_PX` (deterministic)."""
    bw, bh = block
    nx, ny = math.ceil(width / bw), math.ceil(height / bh)
    want = max(1, STATS_BLOCK_PX // (bw * bh))
    kx = max(1, min(nx, round(math.sqrt(want * nx / ny))))
    ky = max(1, min(ny, want // kx))
    out = []
    for j in np.unique(np.linspace(0, ny - 1, ky).round().astype(int)):
        for i in np.unique(np.linspace(0, nx - 1, kx).round().astype(int)):
            x, y = int(i) * bw, int(j) * bh
            out.append((x, y, min(bw, width - x), min(bh, height - y)))
    return out


def _split(win: Window, step: Tuple[int, int]) -> List[Window]:
    """2 x 2, 2 x 1 or 1 x 2 parts of a window, cut on multiples of ``step`` (a block, or half the
    window), along each side that spans more than one step."""
    x, y, w, h = win

    def cuts(start: int, size: int, unit: int) -> List[Tuple[int, int]]:
        n = math.ceil(size / unit)
        if n <= 1:
            return [(start, size)]
        half = math.ceil(n / 2) * unit
        return [(start, half), (start + half, size - half)]

    return [(cx, cy, cw, ch) for cy, ch in cuts(y, h, step[1]) for cx, cw in cuts(x, w, step[0])]


def _apportion(budget: int, weights: List[float]) -> List[int]:
    """Split ``budget`` in proportion to ``weights`` (largest remainders; deterministic)."""
    total = sum(weights)
    shares = [budget * w / total for w in weights]
    out = [math.floor(s) for s in shares]
    order = sorted(range(len(weights)), key=lambda i: (out[i] - shares[i], i))
    for i in order[: budget - sum(out)]:
        out[i] += 1
    return out


def _data_parts(band: Any, win: Window) -> List[Window]:
    """The parts of a partly covered block that are wholly data, down to :data:`_MIN_PART` pixels;
    only when there are none, the smallest parts that hold some (a source smaller than that)."""
    whole: List[Window] = []
    partial: List[Window] = []

    def visit(part: Window) -> None:
        flags, _ = _coverage(band, part)
        if not _has_data(flags):
            return
        if not flags & _EMPTY:
            whole.append(part)
        elif max(part[2], part[3]) <= _MIN_PART:
            partial.append(part)
        else:
            for p in _split(part, (max(1, math.ceil(part[2] / 2)), max(1, math.ceil(part[3] / 2)))):
                visit(p)

    visit(win)
    return whole or partial


def data_blocks(band: Any, budget: int, split_partial: bool) -> List[Blocks]:
    """Up to ``budget`` blocks holding data, spread over the band in proportion to its data.

    Each item is one block as the windows to read: the block itself or, with ``split_partial``
    (the band has no nodata and no mask, so uncovered pixels would read as valid), only its
    parts that hold data. A quadtree over ``GetDataCoverageStatus``: about ``4 x budget x
    depth`` coverage queries (well under a microsecond each for a VRT).
    """
    block = _block(band)
    out: List[Blocks] = []

    def blocks_in(win: Window) -> int:
        return math.ceil(win[2] / block[0]) * math.ceil(win[3] / block[1])

    def visit(win: Window, share: int) -> None:
        if win[2] <= block[0] and win[3] <= block[1]:
            parts = _data_parts(band, win) if split_partial else [win]
            if parts:
                out.append(tuple(parts))
            return
        children = _split(win, block)
        weights = []
        for c in children:
            flags, pct = _coverage(band, c)
            weights.append(c[2] * c[3] * (pct if flags & _EMPTY else 100.0) if _has_data(flags) else 0.0)
        if share >= blocks_in(win):  # every block: exhaustive where there is data
            shares = [blocks_in(c) if w else 0 for c, w in zip(children, weights)]
        elif share == 1:  # one block left: go where most of the data is
            shares = [int(i == int(np.argmax(weights))) if any(weights) else 0 for i in range(len(children))]
        else:
            shares = _apportion(share, weights) if any(weights) else [0] * len(children)
        for child, n in zip(children, shares):
            if n:
                visit(child, min(n, blocks_in(child)))

    flags, _ = _coverage(band, (0, 0, band.XSize, band.YSize))
    if _has_data(flags):
        visit((0, 0, band.XSize, band.YSize), max(1, budget))
    return out


def _spread_order(n: int) -> List[int]:
    """0..n-1 in bit-reversed order, so that any prefix of a quadtree listing is spread out."""
    bits = max(1, (n - 1).bit_length())
    return sorted(range(n), key=lambda i: int(f"{i:0{bits}b}"[::-1], 2))


def _rounds(band: Any, fully_covered: bool, split_partial: bool) -> Iterator[Tuple[List[Blocks], bool]]:
    """``(blocks, exhaustive)``: evenly spread blocks (or data-seeking ones), then 4x more each
    round until every block that holds data is listed (``exhaustive``)."""
    block = _block(band)
    budget = max(1, STATS_BLOCK_PX // (block[0] * block[1]))
    total = math.ceil(band.XSize / block[0]) * math.ceil(band.YSize / block[1])
    if fully_covered:
        yield [(w,) for w in spread_blocks(band.XSize, band.YSize, block)], budget >= total
    else:
        yield data_blocks(band, budget, split_partial), budget >= total
    while budget < total:
        budget = min(total, budget * 4)
        found = data_blocks(band, budget, split_partial)
        yield [found[i] for i in _spread_order(len(found))], budget >= total


def _overview(band: Any) -> Any:
    """The band itself, or its largest overview, when at most :data:`STATS_MAX_PX`; else None."""
    if band.XSize * band.YSize <= STATS_MAX_PX:
        return band
    ovrs = [band.GetOverview(i) for i in range(band.GetOverviewCount())]
    small = [o for o in ovrs if o is not None and o.XSize * o.YSize <= STATS_MAX_PX]
    return max(small, key=lambda o: o.XSize * o.YSize) if small else None


def sample_band(band: Any, read: ReadFn, all_valid: bool) -> BandSample:
    """Valid values of a bounded, data-seeking sample of ``band`` (see the module docstring).

    Args:
        band: a GDAL band.
        read: ``read(band, window)`` -> ``(values, valid)`` of that window at full resolution.
        all_valid: the band has no nodata value and no mask (uncovered VRT areas read as valid).
    """
    start = time.monotonic()
    src = _overview(band)
    whole = src if src is not None else band
    flags, pct = _coverage(whole, (0, 0, whole.XSize, whole.YSize))
    if not _has_data(flags):
        return BandSample(np.zeros(0), 0, 0, True, None)
    fully_covered = not flags & _EMPTY or pct >= 100.0
    if src is not None and fully_covered:
        values, valid = read(src, (0, 0, src.XSize, src.YSize))
        return BandSample(values[valid].ravel(), src.XSize * src.YSize, 1, True, None)
    if src is not None:  # small, partly covered: every block that holds data
        n = math.ceil(src.XSize / _block(src)[0]) * math.ceil(src.YSize / _block(src)[1])
        rounds: Iterator[Tuple[List[Blocks], bool]] = iter([(data_blocks(src, n, all_valid), True)])
    else:
        src = band
        rounds = _rounds(band, fully_covered, all_valid)
    found: List[np.ndarray] = []
    seen: Set[Blocks] = set()
    n_valid = pixels = reads = 0
    limit: Optional[str] = None
    complete = False
    for blocks, exhaustive in rounds:
        for parts in blocks:
            if parts in seen:
                continue
            size = sum(w[2] * w[3] for w in parts)
            if pixels and pixels + size > STATS_MAX_READ_PX:
                limit = "pixels"
            elif time.monotonic() - start > STATS_MAX_SECONDS:
                limit = "time"
            if limit:
                break
            seen.add(parts)
            for w in parts:
                values, valid = read(src, w)
                found.append(values[valid].ravel())
                n_valid += found[-1].size
                reads += 1
            pixels += size
        complete = exhaustive and limit is None
        if limit or complete or n_valid >= STATS_MIN_VALID:
            break
    values = np.concatenate(found) if found else np.zeros(0)
    return BandSample(values, pixels, reads, complete, limit)
