"""GDAL reading of raster crops as RGB uint8, safe in any thread.

:class:`RasterSource` is plain data (path, size, bands, stretch, georeferencing)
describing how a raster becomes RGB. It holds no GDAL object: every read opens
its own dataset, so a QgsTask can read while the GUI thread does the same, and
nothing GDAL-owned outlives the call (a dataset alive at QGIS exit segfaults).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import image_utils as iu
from .crops import CropSpec
from .errors import SegmentationError
from .geo import PIXEL_GEOTRANSFORM, GeoTransform, check_geotransform

STATS_MAX_PX = 4_000_000  # a band (or overview) this small is read whole for the stretch statistics
STATS_BLOCK_PX = 1_000_000  # else about this many pixels of evenly spread blocks are sampled
_LOG = logging.getLogger("ai_segmentation")
# Sidecars that carry georeferencing or statistics (QGIS rewrites .aux.xml) but never pixel values.
_SIDECARS = (".aux.xml", ".prj", ".wld", ".tfw", ".tifw", ".pgw", ".pngw", ".jgw", ".jpgw", ".j2w", ".gfw")


class RasterReadError(SegmentationError):
    """GDAL cannot open or read the raster."""


def _gdal() -> Any:
    from osgeo import gdal

    return gdal


@contextlib.contextmanager
def _quiet_gdal() -> Iterator[Any]:
    """GDAL with errors kept from stderr (the handler stack is per thread)."""
    gdal = _gdal()
    gdal.ErrorReset()
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield gdal
    finally:
        gdal.PopErrorHandler()


def _gdal_call(fn: Callable[[], Any], what: str) -> Any:
    """``fn()``, raising :class:`RasterReadError` naming ``what`` whether GDAL raises or returns None."""
    with _quiet_gdal() as gdal:
        try:
            out = fn()
        except RuntimeError as exc:
            raise RasterReadError(f"GDAL {what}: {exc}") from None
        if out is None:
            raise RasterReadError(f"GDAL {what}: {gdal.GetLastErrorMsg() or 'unknown error'}")
        return out


def open_dataset(uri: str) -> Any:
    """Open ``uri`` read-only with GDAL; works whether or not ``gdal.UseExceptions()`` is on."""
    gdal = _gdal()
    return _gdal_call(lambda: gdal.Open(uri, gdal.GA_ReadOnly), f"cannot open the raster '{uri}'")


def _read(band: Any, win: Tuple[int, int, int, int], buf: Tuple[int, int], resample: int) -> np.ndarray:
    return _gdal_call(lambda: band.ReadAsArray(*win, buf_xsize=buf[0], buf_ysize=buf[1], resample_alg=resample),
                      f"could not read pixels {win}")


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


def _sample_windows(width: int, height: int, block: Tuple[int, int]) -> List[Tuple[int, int, int, int]]:
    """Evenly spread whole blocks totalling about :data:`STATS_BLOCK_PX` (deterministic)."""
    bw, bh = max(1, min(block[0], width)), max(1, min(block[1], height))
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


def band_stretch(band: Any, nodata: Optional[float]) -> Optional[iu.Stretch]:
    """2-98 % stretch of a band from a bounded sample: the whole band or an overview of at most
    :data:`STATS_MAX_PX`, else evenly spread blocks. Never the whole of a large raster."""
    gdal = _gdal()
    near = gdal.GRIORA_NearestNeighbour
    src = band
    if band.XSize * band.YSize > STATS_MAX_PX:
        ovrs = [band.GetOverview(i) for i in range(band.GetOverviewCount())]
        small = [o for o in ovrs if o is not None and o.XSize * o.YSize <= STATS_MAX_PX]
        src = max(small, key=lambda o: o.XSize * o.YSize) if small else None
    if src is not None:
        win = (0, 0, src.XSize, src.YSize)
        values, valid = read_valid(src, nodata, win, win[2:], near)
    else:
        parts = [read_valid(band, nodata, w, w[2:], near) for w in _sample_windows(
            band.XSize, band.YSize, tuple(band.GetBlockSize()))]
        values = np.concatenate([p[0].ravel() for p in parts])
        valid = np.concatenate([p[1].ravel() for p in parts])
    return iu.percentile_stretch(values, valid)


def _stretch_or_default(band: Any, index: int, nodata: Optional[float]) -> iu.Stretch:
    found = band_stretch(band, nodata)
    if found is None:
        _LOG.warning("Band %d has no valid pixel in the statistics sample; showing it unstretched", index)
    return found or (0.0, 255.0)


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
    with _quiet_gdal() as gdal:
        warped = gdal.AutoCreateWarpedVRT(ds)
        return warped.GetMetadata("xml:VRT")[0] if warped is not None else None


def _fingerprint(ds: Any) -> Tuple[Tuple[str, int, int], ...]:
    """``(path, size, mtime_ns)`` of the files holding pixel values (not georeferencing sidecars)."""
    out = []
    for f in (ds.GetFileList() or [])[:32]:
        if not f.lower().endswith(_SIDECARS) and os.path.isfile(f):
            st = os.stat(f)
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
            nodata, stretch = [], []
            for b in chosen:
                band = ds.GetRasterBand(b)
                nodata.append(band.GetNoDataValue())
                keep_as_is = palette is not None or _is_plain_byte(band)
                if b in chosen[: len(stretch)]:
                    stretch.append(stretch[chosen.index(b)])
                else:
                    stretch.append(None if keep_as_is else _stretch_or_default(band, b, nodata[-1]))
            gt = ds.GetGeoTransform(can_return_null=True)
            return cls(
                uri=uri, name=name, width=ds.RasterXSize, height=ds.RasterYSize, band_count=count, bands=chosen,
                geotransform=check_geotransform(gt) if gt is not None else PIXEL_GEOTRANSFORM,
                crs_wkt=crs_wkt if crs_wkt is not None else (ds.GetProjection() or ""),
                georeferenced=gt is not None, stretch=tuple(stretch), nodata=tuple(nodata),
                palette=palette, fingerprint=_fingerprint(ds),
            )
        finally:
            del ds  # close the dataset in this thread, now

    @property
    def notice(self) -> Optional[str]:
        """A warning for the user about how coordinates are handled, or None."""
        if not self.georeferenced:
            return (f"'{self.name}' has no georeferencing: segmentation works in pixel coordinates "
                    "(x = column, y = -row) and polygons will not line up with other layers.")
        if not self.crs_wkt:
            return f"'{self.name}' has no coordinate reference system: set one on the layer."
        return None

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
