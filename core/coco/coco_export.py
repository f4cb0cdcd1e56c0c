"""Polygons on a raster -> a COCO instance-segmentation dataset for fine-tuning SAM (finestSAM).

Qt-free: the raster comes as a :class:`RasterSource` (same bands and stretch as the plugin shows), the
polygons as WKB already in the raster's CRS. Steps: a chip grid over the extent, each polygon clipped to
every chip it overlaps (in pixel space), objects cut by a chip edge flagged ``truncated`` and dropped when
less than ``min_visible`` of them shows, a deterministic train/val split of the chips from a seed, then
PNG chips, ``annotations.json`` and ``georef.json`` per split (see :mod:`core.coco.coco_writer`).

Example::

    source = RasterSource.open("ortho.tif")
    polygons = [SourcePolygon(fid, "tree", wkb), ...]          # WKB in the raster's CRS
    summary = export_coco(source, polygons, CocoExportParams(chip_size=1024, val_fraction=0.2), "dataset")
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .. import fs_checks as fs
from ..families.transforms import IMG_SIZE
from ..raster.crops import CropSpec
from ..raster.geo import Extent, extent_to_pixel_bounds, pixel_to_map
from ..raster.raster_source import RasterSource
from .coco_geometry import ClippedObject, PixelObject, clip_to_chip, pixel_bbox, segmentation, to_pixel_object
from .coco_writer import (
    ANNOTATIONS_FILE,
    GEOREF_FILE,
    GEOREF_FORMAT,
    IMAGES_DIR,
    CocoExportError,
    Staging,
    check_output_folder,
    write_json,
    write_png,
)

OUTPUT_WHAT = "OUTPUT_FOLDER"  # in messages: "cannot write the OUTPUT_FOLDER '<folder>': ..."
DEFAULT_CATEGORY = "object"  # for polygons whose category value is NULL or empty
MIN_CHIP = 32
_GEOMETRY_SHARE = 0.1  # of the progress bar: clipping; the rest is reading and writing chips


class ExportCanceledError(CocoExportError):
    """The user canceled; nothing was written."""


@dataclass(frozen=True)
class CocoExportParams:
    """What :func:`export_coco` writes.

    Attributes:
        chip_size: chip side in raster pixels (native resolution), 32..1024 (SAM's input size).
        overlap: minimum overlap of neighbouring chips, pixels (0 <= overlap < chip_size).
        val_fraction: share of chips in ``val/`` (0: one ``data/`` folder for finestSAM's auto-split).
        seed: seed of the train/val split.
        min_visible: objects cut by a chip edge are dropped from that chip when less than this
            fraction of their area lies inside it (0..1).
        overwrite: replace the dataset an earlier export wrote in the output folder.
    """

    chip_size: int = IMG_SIZE
    overlap: int = 0
    val_fraction: float = 0.0
    seed: int = 42
    min_visible: float = 0.25
    overwrite: bool = False

    def check(self) -> None:
        if not MIN_CHIP <= self.chip_size <= IMG_SIZE:
            raise CocoExportError(f"CHIP_SIZE must be {MIN_CHIP} to {IMG_SIZE} pixels (SAM's input is {IMG_SIZE}; "
                                  f"larger chips would be shrunk for training), got {self.chip_size}.")
        if not 0 <= self.overlap < self.chip_size:
            raise CocoExportError(f"OVERLAP must be 0 to CHIP_SIZE - 1 = {self.chip_size - 1} pixels, "
                                  f"got {self.overlap}.")
        if not 0.0 <= self.val_fraction < 1.0:
            raise CocoExportError(f"VAL_FRACTION must be at least 0 and below 1, got {self.val_fraction}.")
        if not 0.0 <= self.min_visible <= 1.0:
            raise CocoExportError(f"MIN_VISIBLE_FRACTION must be 0 to 1, got {self.min_visible}.")

    @property
    def splits(self) -> Tuple[str, ...]:
        return ("train", "val") if self.val_fraction > 0 else ("data",)


@dataclass(frozen=True)
class SourcePolygon:
    """A polygon to export: its feature id, category and WKB geometry in the raster's CRS."""

    fid: int
    category: str
    wkb: bytes


@dataclass
class ExportSummary:
    """What was written. Counts per split folder name (``data`` or ``train``/``val``)."""

    folder: str
    splits: Tuple[str, ...]
    images: Dict[str, int] = field(default_factory=dict)
    annotations: Dict[str, int] = field(default_factory=dict)
    categories: List[str] = field(default_factory=list)
    truncated: int = 0  # annotations of objects cut by a chip edge (kept)
    dropped: int = 0  # object parts dropped below min_visible
    rle: int = 0  # annotations written as RLE (objects with holes)


@dataclass
class _Chip:
    crop: CropSpec
    objects: List[Tuple[PixelObject, ClippedObject]]
    split: str = ""
    image_id: int = 0

    @property
    def file_name(self) -> str:
        return f"chip_r{self.crop.row0:06d}_c{self.crop.col0:06d}.png"


def _origins(length: int, size: int, stride: int, lo: int, hi: int) -> List[int]:
    """Chip origins on one axis covering pixels ``[lo, hi)`` of ``[0, length)``: evenly spread, every
    chip whole and inside the raster, neighbours overlapping by at least ``size - stride``."""
    if length <= size:
        return [0]
    if hi - lo <= size:
        return [min(max(lo - (size - (hi - lo)) // 2, 0), length - size)]
    last = hi - size
    n = math.ceil((last - lo) / stride) + 1
    return [lo + round(k * (last - lo) / (n - 1)) for k in range(n)]


def pixel_window(source: RasterSource, extent: Optional[Extent]) -> Optional[Tuple[int, int, int, int]]:
    """Raster pixels ``(col0, row0, col1, row1)`` (end-exclusive) of a map extent in the raster CRS,
    rounded outward; the whole raster for None; None when the extent misses the raster."""
    if extent is None:
        return 0, 0, source.width, source.height
    c0, r0, c1, r1 = extent_to_pixel_bounds(source.geotransform, extent)
    win = (max(0, math.floor(c0)), max(0, math.floor(r0)),
           min(source.width, math.ceil(c1)), min(source.height, math.ceil(r1)))
    return win if win[2] > win[0] and win[3] > win[1] else None


def chip_grid(width: int, height: int, size: int, overlap: int,
              window: Optional[Tuple[int, int, int, int]] = None) -> List[CropSpec]:
    """Chips of ``size`` px (the raster's size on a shorter axis) covering ``window``, row by row."""
    c0, r0, c1, r1 = window or (0, 0, width, height)
    stride = size - overlap
    cols = _origins(width, size, stride, c0, c1)
    rows = _origins(height, size, stride, r0, r1)
    return [CropSpec(c, r, min(size, width), min(size, height)) for r in rows for c in cols]


def chips_extent(source: RasterSource, params: CocoExportParams, extent: Optional[Extent]) -> Optional[Extent]:
    """Map bounding box ``(xmin, ymin, xmax, ymax)`` in the raster CRS of the chips covering ``extent``
    (only polygons overlapping it can be annotated), or None when the extent misses the raster."""
    window = pixel_window(source, extent)
    if window is None:
        return None
    crops = chip_grid(source.width, source.height, params.chip_size, params.overlap, window)
    c0, r0 = min(c.col0 for c in crops), min(c.row0 for c in crops)
    c1, r1 = max(c.col0 + c.width for c in crops), max(c.row0 + c.height for c in crops)
    xy = pixel_to_map(source.geotransform, [(c0, r0), (c1, r0), (c0, r1), (c1, r1)])
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())


def split_of(crop: CropSpec, seed: int) -> float:
    """A chip's rank in ``[0, 1)`` for the split: a hash of the seed and its origin, so the split does
    not depend on numpy's random streams or on which other chips exist."""
    digest = hashlib.sha256(f"{seed}:{crop.col0}:{crop.row0}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_splits(chips: Sequence[_Chip], params: CocoExportParams) -> None:
    """Set each chip's split: the ``round(n * val_fraction)`` lowest ranks (at least one, leaving at
    least one for training) go to ``val``."""
    if params.val_fraction <= 0:
        for chip in chips:
            chip.split = "data"
        return
    if len(chips) < 2:
        raise CocoExportError(f"Only {len(chips)} chip holds objects, so there is nothing to split into "
                              "train and val: set VAL_FRACTION to 0 (finestSAM then splits by itself).")
    n_val = min(max(round(len(chips) * params.val_fraction), 1), len(chips) - 1)
    ranked = sorted(chips, key=lambda c: split_of(c.crop, params.seed))
    for i, chip in enumerate(ranked):
        chip.split = "val" if i < n_val else "train"


def plan_chips(objects: Sequence[PixelObject], crops: Sequence[CropSpec], params: CocoExportParams,
               summary: ExportSummary, is_canceled: Callable[[], bool],
               progress: Callable[[float], None]) -> List[_Chip]:
    """Clip every object to every chip it overlaps; chips left without objects are not kept."""
    by_col: Dict[int, List[CropSpec]] = {}
    for crop in crops:
        by_col.setdefault(crop.col0, []).append(crop)
    found: Dict[Tuple[int, int], _Chip] = {}
    for i, obj in enumerate(objects):
        if is_canceled():
            raise ExportCanceledError("Canceled: nothing was written.")
        oc0, or0, oc1, or1 = obj.bounds
        for col0, column in by_col.items():
            if col0 >= oc1 or col0 + column[0].width <= oc0:
                continue
            for crop in column:
                clipped = clip_to_chip(obj, crop) if crop.row0 < or1 and crop.row0 + crop.height > or0 else None
                if clipped is None:
                    continue
                if clipped.visible < params.min_visible or clipped.area < 1.0:
                    summary.dropped += 1
                    continue
                found.setdefault((crop.row0, crop.col0), _Chip(crop, [])).objects.append((obj, clipped))
        progress(_GEOMETRY_SHARE * 100.0 * (i + 1) / len(objects))
    return [found[k] for k in sorted(found)]


def _annotation(ann_id: int, image_id: int, category_id: int, obj: PixelObject, clipped: ClippedObject,
                crop: CropSpec) -> Tuple[dict, str]:
    seg, kind = segmentation(clipped, crop.width, crop.height)
    return {
        "id": ann_id, "image_id": image_id, "category_id": category_id, "segmentation": seg,
        "area": round(clipped.area, 2), "bbox": pixel_bbox(clipped, crop.width, crop.height), "iscrowd": 0,
        "truncated": clipped.visible < 1.0 - 1e-9, "visible_fraction": round(clipped.visible, 4),
        "source_fid": obj.fid,
    }, kind


def _georef(source: RasterSource, params: CocoExportParams, chips: Sequence[_Chip]) -> dict:
    return {
        "format": GEOREF_FORMAT, "version": 1, "raster": source.name,
        "raster_path": source.uri if os.path.isfile(source.uri) else None,
        "crs_wkt": source.crs_wkt, "georeferenced": source.georeferenced, "bands": list(source.bands),
        "stretch": [list(s) if s else None for s in source.stretch],
        "chip_size": params.chip_size, "overlap": params.overlap,
        "geotransform_convention": "GDAL: x = gt[0] + col*gt[1] + row*gt[2], y = gt[3] + col*gt[4] + row*gt[5]; "
                                   "(col, row) = (0, 0) is the chip's top-left corner, pixel centres at +0.5",
        "images": {c.file_name: {"id": c.image_id, "col0": c.crop.col0, "row0": c.crop.row0,
                                 "width": c.crop.width, "height": c.crop.height,
                                 "geotransform": list(c.crop.geotransform(source.geotransform))} for c in chips},
    }


def export_coco(source: RasterSource, polygons: Sequence[SourcePolygon], params: CocoExportParams, folder: str,
                extent: Optional[Extent] = None, progress: Callable[[float], None] = lambda p: None,
                is_canceled: Callable[[], bool] = lambda: False) -> ExportSummary:
    """Write the dataset into ``folder``; see the module docstring.

    Args:
        source: the raster, with the bands and stretch to show.
        polygons: the objects, WKB in the raster's CRS.
        params: chips, split and filtering.
        folder: output folder, checked first (see :func:`core.coco.coco_writer.check_output_folder`).
        extent: ``(xmin, ymin, xmax, ymax)`` in the raster CRS; chips cover it (None: the whole raster).
            Every polygon visible in a chip is annotated, inside the extent or not.
        progress: called with 0..100.
        is_canceled: polled between objects and chips; raises :class:`ExportCanceledError`.
    Raises:
        CocoExportError: bad parameters, output folder, or nothing to export.
    """
    params.check()
    replace = check_output_folder(folder, params.overwrite)
    window = pixel_window(source, extent)
    if window is None:
        raise CocoExportError(f"EXTENT does not overlap the raster '{source.name}'.")
    objects = [o for o in (to_pixel_object(p.fid, p.category, p.wkb, source.geotransform) for p in polygons) if o]
    crops = chip_grid(source.width, source.height, params.chip_size, params.overlap, window)
    summary = ExportSummary(os.path.abspath(folder), params.splits)
    chips = plan_chips(objects, crops, params, summary, is_canceled, progress)
    if not chips:
        raise CocoExportError(
            f"No polygon lies on the raster '{source.name}' within the extent" if not summary.dropped else
            f"All {summary.dropped} polygon parts on the chips show less than MIN_VISIBLE_FRACTION = "
            f"{params.min_visible} of their area: lower it, or make chips larger.")
    assign_splits(chips, params)
    summary.categories = sorted({obj.category for c in chips for obj, _ in c.objects})
    category_ids = {name: i + 1 for i, name in enumerate(summary.categories)}
    try:
        staging = Staging(folder, params.splits)
    except OSError as exc:
        raise fs.os_error(exc, "write", OUTPUT_WHAT, summary.folder, error=CocoExportError) from None
    try:
        _write(source, params, chips, category_ids, staging, summary, progress, is_canceled)
        staging.commit(replace)
    except OSError as exc:
        error = fs.os_error(exc, "write", OUTPUT_WHAT, summary.folder, error=CocoExportError)  # before the cleanup
        staging.abort()
        raise CocoExportError(f"{error} (nothing was kept)") from None
    except BaseException:
        staging.abort()
        raise
    return summary


def _write(source: RasterSource, params: CocoExportParams, chips: Sequence[_Chip], category_ids: Dict[str, int],
           staging: Staging, summary: ExportSummary, progress: Callable[[float], None],
           is_canceled: Callable[[], bool]) -> None:
    categories = [{"id": i, "name": n, "supercategory": ""} for n, i in category_ids.items()]
    datasets = {s: {"info": {"description": f"AI Segmentation for QGIS: chips of {source.name}", "version": "1"},
                    "licenses": [], "images": [], "annotations": [], "categories": categories}
                for s in params.splits}
    ann_id = 0
    for i, chip in enumerate(chips):
        if is_canceled():
            raise ExportCanceledError("Canceled: nothing was written.")
        chip.image_id = i + 1
        write_png(staging.path(chip.split, IMAGES_DIR, chip.file_name), source.read(chip.crop))
        coco = datasets[chip.split]
        coco["images"].append({"id": chip.image_id, "file_name": chip.file_name,
                               "width": chip.crop.width, "height": chip.crop.height})
        for obj, clipped in chip.objects:
            ann_id += 1
            ann, kind = _annotation(ann_id, chip.image_id, category_ids[obj.category], obj, clipped, chip.crop)
            coco["annotations"].append(ann)
            summary.truncated += ann["truncated"]
            summary.rle += kind == "rle"
        progress(100.0 * (_GEOMETRY_SHARE + (1 - _GEOMETRY_SHARE) * (i + 1) / len(chips)))
    for split, coco in datasets.items():
        write_json(staging.path(split, ANNOTATIONS_FILE), coco)
        write_json(staging.path(split, GEOREF_FILE), _georef(source, params, [c for c in chips if c.split == split]))
        summary.images[split] = len(coco["images"])
        summary.annotations[split] = len(coco["annotations"])
