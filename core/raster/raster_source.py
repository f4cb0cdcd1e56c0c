"""GDAL reading of raster crops as RGB uint8, safe in any thread.

:class:`RasterSource` is plain data (path, size, bands, stretch, georeferencing)
describing how a raster becomes RGB. It holds no GDAL object: every read opens
its own dataset, so a QgsTask can read while the GUI thread does the same, and
nothing GDAL-owned outlives the call (a dataset alive at QGIS exit segfaults).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .. import fs_checks as fs
from .. import image_utils as iu
from ..errors import SegmentationError
from ..gdal_calls import gdal_try
from . import band_sample as bs
from .crops import CropSpec
from .geo import PIXEL_GEOTRANSFORM, GeoTransform, check_geotransform

_LOG = logging.getLogger("ai_segmentation")
# Sidecars that carry georeferencing or statistics (QGIS rewrites .aux.xml) but never pixel values.
_SIDECARS = (".aux.xml", ".prj", ".wld", ".tfw", ".tifw", ".pgw", ".pngw", ".jgw", ".jpgw", ".j2w", ".gfw")


class RasterReadError(SegmentationError):
    """GDAL cannot open or read the raster."""


def _gdal() -> Any:
    from osgeo import gdal

    return gdal


def open_dataset(uri: str) -> Any:
    """Open ``uri`` read-only with GDAL; works whether or not ``gdal.UseExceptions()`` is on.

    Raises :class:`RasterReadError` saying why: missing, a folder, unreadable, not a raster
    format GDAL knows, or damaged.
    """
    gdal = _gdal()
    ds, detail = gdal_try(lambda: gdal.Open(uri, gdal.GA_ReadOnly))
    if ds is not None:
        return ds
    if not fs.is_local_path(uri):
        raise RasterReadError(f"cannot open the raster '{uri}' (GDAL: {detail})")
    path = fs.check_readable_file(uri, "raster", RasterReadError)  # missing, folder, permission, I/O
    if re.search(r"not recognized as (being in )?a supported file format", detail):  # GDAL < 3.7 / >= 3.7
        raise RasterReadError(f"cannot open the raster '{path}': it is not in a raster format GDAL knows; "
                              f"check that this is the raster file (GDAL: {detail})")
    raise RasterReadError(f"cannot open the raster '{path}': the file is damaged or truncated (GDAL: {detail}); "
                          "replace it with a good copy")


_DAMAGED = ("ireadblock", "tiffread", "truncat", "corrupt", "decode", "read error", "short read", "failed to read",
            "unexpected end")


def _read_error(band: Any, win: Tuple[int, int, int, int], detail: str) -> RasterReadError:
    """What failed, in the plugin's words: the file, the rows (of the failing block when GDAL
    names it), and whether the file looks damaged or has gone."""
    ds = band.GetDataset()
    path = ds.GetDescription() if ds is not None else ""
    rows = (win[1], win[1] + win[3] - 1)
    block = re.search(r"X offset \d+, Y offset (\d+)", detail)
    # The block is this band's (not an overview's); GDAL 3.7 and later name the file without its folder.
    own = bool(path) and detail.split(", band ")[0] in (path, os.path.basename(path))
    if block and own and ds.RasterYSize == band.YSize:
        first = int(block.group(1)) * band.GetBlockSize()[1]
        rows = (first, min(first + band.GetBlockSize()[1], band.YSize) - 1)
    where = f"row {rows[0]}" if rows[0] == rows[1] else f"rows {rows[0]}-{rows[1]}"
    local = fs.is_local_path(path)
    shown = f"the raster '{path}'" if local else "the raster"
    if local and not os.path.exists(path):
        return RasterReadError(f"{shown} could not be read at {where}: the file is gone (moved or deleted while "
                               "in use); add the layer again")
    if any(k in detail.lower() for k in _DAMAGED):
        return RasterReadError(f"{shown} could not be read at {where}: the file is damaged or truncated "
                               f"(GDAL: {detail}); replace it with a good copy")
    return RasterReadError(f"{shown} could not be read at {where} (GDAL: {detail})")


def _read(band: Any, win: Tuple[int, int, int, int], buf: Tuple[int, int], resample: int) -> np.ndarray:
    out, detail = gdal_try(lambda: band.ReadAsArray(*win, buf_xsize=buf[0], buf_ysize=buf[1],
                                                     resample_alg=resample))
    if detail:
        raise _read_error(band, win, detail)
    return out


def read_valid(band: Any, nodata: Optional[float], win: Tuple[int, int, int, int], buf: Tuple[int, int],
               resample: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(values, valid)`` of a window ``(xoff, yoff, xsize, ysize)`` read into ``buf`` ``(w, h)``.

    Invalid: nodata, NaN, inf, and pixels masked by an alpha band or a mask file.
    GDAL's resampling already leaves nodata out of averages.
    """
    gdal = _gdal()
    values = _read(band, win, buf, resample)
    valid = iu.valid_mask(values, nodata)
    flags = band.GetMaskFlags()
    if not flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA):  # alpha band or mask file
        valid &= _read(band.GetMaskBand(), win, buf, gdal.GRIORA_NearestNeighbour) > 0
    return values, valid


def band_stretch(band: Any, nodata: Optional[float]) -> Tuple[Optional[iu.Stretch], bs.BandSample]:
    """2-98 % stretch of a band from a bounded, data-seeking sample (:func:`core.raster.band_sample.sample_band`),
    and that sample; the stretch is None when the sample holds no valid pixel."""
    gdal = _gdal()
    near = gdal.GRIORA_NearestNeighbour
    all_valid = band.GetMaskFlags() == gdal.GMF_ALL_VALID  # no nodata, no mask: uncovered areas read as valid
    sample = bs.sample_band(band, lambda b, w: read_valid(b, nodata, w, w[2:], near), all_valid)
    return iu.percentile_stretch(sample.values, np.ones(sample.values.shape, bool)), sample


def _type_range(band: Any) -> iu.Stretch:
    """Full range of an integer band's data type; 0..1 for floating point."""
    from osgeo import gdal_array

    if band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE":
        return -128.0, 127.0
    kind = np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(band.DataType) or np.float64)
    if kind.kind in "iu":
        return float(np.iinfo(kind).min), float(np.iinfo(kind).max)
    return 0.0, 1.0


def _stretch_or_fallback(band: Any, index: int, nodata: Optional[float], name: str) -> Tuple[iu.Stretch, str]:
    """The band's stretch and "", or, when no valid pixel was found, a fallback and why (for the user)."""
    found, sample = band_stretch(band, nodata)
    if found is not None:
        if sample.valid < bs.STATS_MIN_VALID and not sample.complete:
            _LOG.info("Band %d of '%s': stretch from only %d valid pixels (%d read, %s limit reached)",
                      index, name, sample.valid, sample.pixels_read, sample.limit)
        return found, ""
    lo, hi = _type_range(band)
    if sample.complete:
        where = "no part of it holds data" if not sample.pixels_read else "every pixel is nodata or masked"
        note = (f"Band {index} of '{name}' holds no valid pixel ({where}): it shows black. "
                "Check the band choice and the layer's nodata value.")
    else:
        note = (f"No valid pixel was found in the sampled part of band {index} of '{name}' "
                f"({sample.pixels_read:,} pixels read in {sample.windows_read} blocks): the stretch falls "
                f"back to the data type's range {lo:g}..{hi:g}. If the raster holds data elsewhere, build "
                "overviews for it (Raster > Miscellaneous > Build Overviews) so that all of it can be sampled.")
    _LOG.warning(note)
    return (lo, hi), note


def _is_plain_byte(band: Any) -> bool:
    gdal = _gdal()
    if band.DataType != gdal.GDT_Byte:
        return False
    # GDAL >= 3.7 gives signed bytes their own type, GDT_Int8 (and warns if PIXELTYPE is asked for).
    return hasattr(gdal, "GDT_Int8") or band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") != "SIGNEDBYTE"


def _gcp_warped_uri(ds: Any) -> Optional[str]:
    """For a raster georeferenced by GCPs only: the XML of the warped VRT that QGIS also shows."""
    if ds.GetGeoTransform(can_return_null=True) is not None or not ds.GetGCPCount():
        return None
    warped, _ = gdal_try(lambda: _gdal().AutoCreateWarpedVRT(ds))  # None: no warp (e.g. collinear GCPs)
    return warped.GetMetadata("xml:VRT")[0] if warped is not None else None


def _fingerprint(ds: Any) -> Tuple[Tuple[str, int, int], ...]:
    """``(path, size, mtime_ns)`` of the files holding pixel values (not georeferencing sidecars)."""
    out = []
    for f in (ds.GetFileList() or [])[:32]:
        try:
            st = os.stat(f) if not f.lower().endswith(_SIDECARS) and os.path.isfile(f) else None
        except OSError:  # gone since GDAL listed it: the next read says so
            continue
        if st is not None:
            out.append((os.path.abspath(f), int(st.st_size), int(st.st_mtime_ns)))
    return tuple(out)


@dataclass(frozen=True)
class RasterSource:
    """How one raster becomes RGB uint8 crops. Plain data; open with :meth:`open`.

    Attributes:
        uri: GDAL dataset name (a file path, ``GPKG:...``, ``/vsizip/...``, or the XML of a
            warped VRT for a raster georeferenced by GCPs only, as QGIS shows it).
        name: file name for messages.
        width, height: raster size in pixels.
        band_count: bands in the raster.
        bands: 1-based bands shown as R, G, B.
        geotransform: GDAL geotransform; :data:`PIXEL_GEOTRANSFORM` when not georeferenced.
        crs_wkt: CRS of ``geotransform`` as WKT ("" if none).
        georeferenced: False when the raster has no geotransform (pixel coordinates).
        stretch: per channel ``(low, high)`` band values shown as 0 and 255; None: 8-bit as is.
        nodata: per channel nodata value or None.
        palette: ``[N, 3]`` RGB colour table when a palette band is shown, else None.
        fingerprint: ``(path, size, mtime_ns)`` of the pixel files, to notice edits.
        warnings: what the user should know about the stretch (no valid pixel found, ...).
    """

    uri: str
    name: str
    width: int
    height: int
    band_count: int
    bands: iu.Bands
    geotransform: GeoTransform
    crs_wkt: str
    georeferenced: bool
    stretch: Tuple[Optional[iu.Stretch], ...]
    nodata: Tuple[Optional[float], ...]
    palette: Optional[Tuple[Tuple[int, int, int], ...]]
    fingerprint: Tuple[Tuple[str, int, int], ...]
    warnings: Tuple[str, ...] = ()

    @classmethod
    def open(cls, uri: str, bands: Optional[Sequence[int]] = None,
             crs_wkt: Optional[str] = None) -> RasterSource:
        """Inspect ``uri`` and compute the stretch statistics (a bounded sample, once).

        Args:
            uri: anything ``gdal.Open`` accepts.
            bands: 1 or 3 band indices (1-based); default R, G, B by colour interpretation.
            crs_wkt: CRS to use instead of the file's (QGIS may assign one to the layer).
        """
        uri = os.path.abspath(uri) if os.path.isfile(uri) else uri
        name = os.path.basename(uri)
        ds = open_dataset(uri)
        shown = uri  # in messages
        warped = _gcp_warped_uri(ds)
        if warped is not None:
            uri, ds = warped, open_dataset(warped)
        try:
            gdal = _gdal()
            count = ds.RasterCount
            if count < 1:
                raise RasterReadError(f"'{uri}' holds no raster bands (is it a multi-dataset container?)")
            interps = [gdal.GetColorInterpretationName(ds.GetRasterBand(i).GetColorInterpretation())
                       for i in range(1, count + 1)]
            chosen = iu.check_bands(bands, count) if bands is not None else iu.default_bands(interps)
            first = ds.GetRasterBand(chosen[0])
            table = first.GetColorTable()
            palette = None
            if table is not None and len(set(chosen)) == 1 and interps[chosen[0] - 1] == "Palette":
                entries = [table.GetColorEntry(i) for i in range(table.GetCount())]
                palette = tuple(tuple(int(v) for v in row) for row in iu.palette_lut(entries))
            nodata, stretch, notes = [], [], []
            for b in chosen:
                band = ds.GetRasterBand(b)
                nodata.append(band.GetNoDataValue())
                keep_as_is = palette is not None or _is_plain_byte(band)
                if b in chosen[: len(stretch)]:
                    stretch.append(stretch[chosen.index(b)])
                elif keep_as_is:
                    stretch.append(None)
                else:
                    found, note = _stretch_or_fallback(band, b, nodata[-1], shown)
                    stretch.append(found)
                    notes += [note] if note else []
            gt = ds.GetGeoTransform(can_return_null=True)
            return cls(
                uri=uri, name=name, width=ds.RasterXSize, height=ds.RasterYSize, band_count=count, bands=chosen,
                geotransform=check_geotransform(gt) if gt is not None else PIXEL_GEOTRANSFORM,
                crs_wkt=crs_wkt if crs_wkt is not None else (ds.GetProjection() or ""),
                georeferenced=gt is not None, stretch=tuple(stretch), nodata=tuple(nodata),
                palette=palette, fingerprint=_fingerprint(ds), warnings=tuple(notes),
            )
        finally:
            del ds  # close the dataset in this thread, now

    @property
    def notice(self) -> Optional[str]:
        """A warning for the user about how coordinates are handled and about the stretch, or None."""
        notes = list(self.warnings)
        if not self.georeferenced:
            notes.insert(0, f"'{self.name}' has no georeferencing: segmentation works in pixel coordinates "
                            "(x = column, y = -row) and polygons will not line up with other layers.")
        elif not self.crs_wkt:
            notes.insert(0, f"'{self.name}' has no coordinate reference system: set one on the layer.")
        return " ".join(notes) or None

    def identity(self) -> dict:
        """What the RGB pixels depend on, for cache keys (georeferencing excluded)."""
        pal = hashlib.sha256(repr(self.palette).encode()).hexdigest() if self.palette else None
        return {"uri": self.uri, "files": [list(f) for f in self.fingerprint], "bands": list(self.bands),
                "stretch": [list(s) if s else None for s in self.stretch],
                "nodata": [None if v is None or math.isnan(v) else v for v in self.nodata], "palette": pal}

    def read(self, crop: CropSpec) -> np.ndarray:
        """The crop as ``[crop.height, crop.width, 3]`` uint8 RGB; outside the raster is black.

        Coarse crops (``scale > 1``) are averaged by GDAL while reading (overviews
        are used when present); the raster is never loaded whole.
        """
        frame = np.zeros((crop.height, crop.width, 3), np.uint8)
        w, h = crop.valid_size(self.width, self.height)
        if w == 0 or h == 0:
            return frame
        gdal = _gdal()
        win = (crop.col0, crop.row0, w * crop.scale, h * crop.scale)
        # Average (nodata-aware) for coarse crops; palette indices must not be averaged.
        average = crop.scale > 1 and self.palette is None
        resample = gdal.GRIORA_Average if average else gdal.GRIORA_NearestNeighbour
        ds = open_dataset(self.uri)
        try:
            done = {}
            for ch, b in enumerate(self.bands):
                if b not in done:
                    done[b] = read_valid(ds.GetRasterBand(b), self.nodata[ch], win, (w, h), resample)
                values, valid = done[b]
                if self.palette is not None:
                    frame[:h, :w] = iu.expand_palette(values, np.array(self.palette, np.uint8), valid)
                    break
                frame[:h, :w, ch] = iu.stretch_to_uint8(values, self.stretch[ch], valid)
        finally:
            del ds
        return frame
