"""The files of a COCO dataset folder: checks before the work, a staging folder, and the swap-in.

Layouts (finestSAM's, see the README): one folder ``data/`` (VAL_FRACTION 0), or ``train/`` and
``val/``; each holds ``images/*.png``, ``annotations.json`` and ``georef.json`` (each chip's
geotransform and CRS). Everything is written into a hidden staging folder inside the output folder
and renamed into place only when complete, so a cancel or a failure leaves the folder as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, List, Sequence, Tuple

import numpy as np
from osgeo import gdal

from .. import fs_checks as fs
from ..errors import SegmentationError
from ..gdal_calls import gdal_try, reported_error
from ..raster.geo import pixel_to_map

SPLIT_DIRS = ("data", "train", "val")
IMAGES_DIR = "images"
ANNOTATIONS_FILE = "annotations.json"
GEOREF_FILE = "georef.json"
GEOREF_FORMAT = "ai-segmentation/coco-georef"
_STAGING_PREFIX = ".coco-export-"


class CocoExportError(SegmentationError):
    """The dataset cannot be written (bad parameters, output folder, or no object to export)."""


def _is_our_split(path: str) -> bool:
    """True for a split folder an earlier export wrote (its georef.json names our format)."""
    try:
        with open(os.path.join(path, GEOREF_FILE), encoding="utf-8") as f:
            return json.load(f).get("format") == GEOREF_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _probe_writable(folder: str, shown: str) -> None:
    probe = os.path.join(folder, f"{_STAGING_PREFIX}probe-{os.getpid()}")
    try:
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError as exc:
        raise CocoExportError(f"OUTPUT_FOLDER '{shown}' is not writable ({exc.strerror}): choose a folder "
                              "you can write to.") from None


def check_output_folder(folder: str, overwrite: bool) -> List[str]:
    """Check, changing nothing, that a dataset can be written to ``folder``; returns the old split
    folders to replace.

    A missing folder will be created (its nearest existing parent must be writable). An existing one
    must be empty, or with ``overwrite`` hold only split folders written by an earlier export (other
    files are left alone). Raises :class:`CocoExportError` saying what to do.
    """
    if not folder:
        raise CocoExportError("OUTPUT_FOLDER is empty: choose a folder for the dataset.")
    folder = os.path.abspath(folder)
    if not os.path.exists(folder):
        parent = os.path.dirname(folder)
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise CocoExportError(f"OUTPUT_FOLDER '{folder}' cannot be created: '{parent}' is a file. "
                                  "Choose a folder.")
        _probe_writable(parent, folder)
        return []
    if not os.path.isdir(folder):
        raise CocoExportError(f"OUTPUT_FOLDER '{folder}' is a file: choose a folder.")
    entries = sorted(e for e in os.listdir(folder) if not e.startswith(_STAGING_PREFIX))
    if entries and not overwrite:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise CocoExportError(
            f"OUTPUT_FOLDER '{folder}' is not empty ({shown}): choose an empty or new folder, or set "
            "OVERWRITE to replace the dataset an earlier export wrote there.")
    splits = [e for e in entries if e in SPLIT_DIRS]
    foreign = [s for s in splits if not _is_our_split(os.path.join(folder, s))]
    if foreign:
        raise CocoExportError(
            f"'{os.path.join(folder, foreign[0])}' was not written by this export, so OVERWRITE will not "
            "replace it: move it away or choose another folder.")
    _probe_writable(folder, folder)
    return [os.path.join(folder, s) for s in splits]


def write_json(path: str, data: Any) -> None:
    """Write ``data`` as JSON atomically (temporary file in the same folder, then rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_png(path: str, rgb: np.ndarray) -> None:
    """Write a ``[H, W, 3]`` uint8 image as an RGB PNG (no georeferencing, no sidecar)."""
    h, w, _ = rgb.shape
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(rgb[:, :, i])

    def write() -> bool:
        out = gdal.GetDriverByName("PNG").CreateCopy(path, mem)
        if out is None:
            return False
        del out  # closing writes the last bytes: GDAL reports a failure then
        return True

    _, detail = gdal_try(write, lambda ok: not ok or reported_error(ok))
    if detail:
        raise fs.library_error(detail, "write", "chip", path, CocoExportError)


class Staging:
    """A hidden folder inside the output folder where the new split folders are built."""

    def __init__(self, folder: str, splits: Sequence[str]) -> None:
        self.folder = os.path.abspath(folder)
        self.created = not os.path.exists(self.folder)
        os.makedirs(self.folder, exist_ok=True)
        self.root = tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self.folder)
        self.splits = tuple(splits)
        for split in self.splits:
            os.makedirs(os.path.join(self.root, split, IMAGES_DIR))

    def path(self, split: str, *parts: str) -> str:
        return os.path.join(self.root, split, *parts)

    def commit(self, replace: Sequence[str]) -> None:
        """Move the old split folders aside, the new ones into place, then delete the old ones."""
        old = os.path.join(self.root, ".replaced")
        os.mkdir(old)
        moves: List[Tuple[str, str]] = []  # (from, to), done so far, undone on failure
        try:
            for path in replace:
                moves.append((path, os.path.join(old, os.path.basename(path))))
                os.replace(*moves[-1])
            for split in self.splits:
                moves.append((self.path(split), os.path.join(self.folder, split)))
                os.replace(*moves[-1])
        except OSError:
            for src, dst in reversed(moves):
                with contextlib.suppress(OSError):
                    os.replace(dst, src)
            raise
        shutil.rmtree(self.root, ignore_errors=True)

    def abort(self) -> None:
        """Delete the staging folder, and the output folder if it was made for this export."""
        shutil.rmtree(self.root, ignore_errors=True)
        if self.created:
            with contextlib.suppress(OSError):
                os.rmdir(self.folder)


def read_georef(split_folder: str) -> dict:
    """The ``georef.json`` of a split folder (``data``, ``train`` or ``val``)."""
    with open(os.path.join(split_folder, GEOREF_FILE), encoding="utf-8") as f:
        return json.load(f)


def chip_to_map(georef: dict, file_name: str, pixels: Sequence[Sequence[float]]) -> np.ndarray:
    """``[N, 2]`` continuous chip pixel positions ``(col, row)`` of image ``file_name`` -> map
    coordinates ``(x, y)`` in ``georef["crs_wkt"]`` (pixel ``(i, j)``'s centre is ``(i + .5, j + .5)``)."""
    return pixel_to_map(georef["images"][file_name]["geotransform"], pixels)
