"""Cached embeddings of an extent as a georeferenced GeoTIFF: all 256 channels, or principal components.

One GeoTIFF cell per embedding cell (16 crop pixels for a full SAM crop, see
:mod:`core.embeddings.features`), stitched across overlapping crops with tapering weights so there are
no seams, NaN (the nodata value) where a cell's centre lies off the raster. Principal
components come from numpy: fitted on at most :data:`PCA_SAMPLES` cells taken on a regular
lattice of the crops' cells inside the extent (deterministic), signs fixed so that each
component's largest loading is positive; the first three show as an RGB image. Float16 is
written as GDAL's half-float GeoTIFF (``NBITS=16``), rounded to nearest by numpy first.

The file is written next to its destination under a temporary name and renamed over it
when complete: a failure or a cancel leaves no partial output. GDAL only (no QGIS).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from .. import fs_checks as fs
from ..errors import SegmentationError
from ..gdal_calls import gdal_try, reported_error, returned_error_code
from ..raster.crops import CropSpec
from ..raster.geo import GeoTransform
from .features import Blender, CellGrid, FeatureFn, Window

PCA_SAMPLES = 32768  # cells the principal components are fitted on, at most
TILE = 256  # GeoTIFF block side, cells; the export is computed one block at a time
_CREATE = ["TILED=YES", f"BLOCKXSIZE={TILE}", f"BLOCKYSIZE={TILE}", "COMPRESS=DEFLATE", "PREDICTOR=3",
           "ZLEVEL=1", "INTERLEAVE=BAND", "BIGTIFF=IF_SAFER"]
_SUFFIXES = (".tif", ".tiff")
WHAT = "GeoTIFF"  # in messages: "cannot write the GeoTIFF '<path>': ..."


class EmbeddingExportError(SegmentationError):
    """The export cannot be written (bad destination, GDAL failure, nothing to export)."""


class ExportCancelledError(EmbeddingExportError):
    """The user cancelled; nothing was written."""


def check_output_path(path: str) -> str:
    """The absolute destination if a GeoTIFF can be written there (see
    :func:`core.fs_checks.check_output_file`), else a clear error."""
    if not path:
        raise EmbeddingExportError("no output file given: choose where to save the GeoTIFF")
    full = os.path.abspath(path)
    if not full.lower().endswith(_SUFFIXES):
        raise EmbeddingExportError(f"'{os.path.basename(full)}' is not a GeoTIFF name: end it with .tif")
    return fs.check_output_file(full, WHAT, error=EmbeddingExportError)


@dataclass(frozen=True)
class Pca:
    """Principal components of embedding vectors.

    Attributes:
        mean: ``[C]`` float32 mean vector.
        components: ``[N, C]`` float32 orthonormal rows, by decreasing variance.
        explained: ``[N]`` fraction of the total variance each explains.
    """

    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray

    @classmethod
    def fit(cls, samples: np.ndarray, n: int) -> Pca:
        """Fit ``n`` components on ``samples`` ``[S, C]`` (S >= 2)."""
        if samples.shape[0] < 2:
            raise EmbeddingExportError("too few encoded cells in the extent to compute principal components")
        x = np.asarray(samples, np.float64)
        mean = x.mean(axis=0)
        centred = x - mean
        values, vectors = np.linalg.eigh(centred.T @ centred / (x.shape[0] - 1))
        order = np.argsort(values)[::-1][:n]
        comps = vectors[:, order].T
        signs = np.sign(comps[np.arange(comps.shape[0]), np.abs(comps).argmax(axis=1)])
        comps *= np.where(signs == 0, 1.0, signs)[:, None]
        total = float(values.clip(min=0).sum()) or 1.0
        return cls(mean.astype(np.float32), comps.astype(np.float32), (values[order].clip(min=0) / total))

    def project(self, values: np.ndarray) -> np.ndarray:
        """``[C, rows, cols]`` -> ``[N, rows, cols]`` component scores."""
        c, rows, cols = values.shape
        return (self.components @ (values.reshape(c, -1) - self.mean[:, None])).reshape(-1, rows, cols)


class ExportResult(NamedTuple):
    """What was written: ``path``, its ``bands``, size ``(cols, rows)``, ``geotransform``, and for
    principal components the fraction of variance each explains (else empty)."""

    path: str
    bands: int
    size: Tuple[int, int]
    geotransform: GeoTransform
    explained: Tuple[float, ...]


class GeoTiffWriter:
    """A float GeoTIFF written block by block under a temporary name, renamed into place by
    :meth:`commit`; :meth:`abort` (or leaving the ``with`` block on an error) removes it.

    Any failure (GDAL's, with its exceptions on or off, or the disk's) raises
    :class:`EmbeddingExportError` naming the destination, and leaves nothing behind.
    """

    def __init__(self, path: str, cols: int, rows: int, bands: int, gt: GeoTransform, crs_wkt: str,
                 float16: bool = False, descriptions: Sequence[str] = (),
                 metadata: Optional[Dict[str, str]] = None) -> None:
        self.path, self.float16 = path, float16
        self._ds = None
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".tif", dir=os.path.dirname(path))
        except OSError as exc:
            raise fs.os_error(exc, "write", WHAT, path, error=EmbeddingExportError) from None
        os.close(fd)
        options = _CREATE + (["NBITS=16"] if float16 else [])

        def create() -> Any:
            ds = gdal.GetDriverByName("GTiff").Create(self._tmp, cols, rows, bands, gdal.GDT_Float32, options)
            if ds is not None:
                ds.SetGeoTransform(tuple(gt))
                if crs_wkt:
                    ds.SetProjection(crs_wkt)
                if metadata:
                    ds.SetMetadata(dict(metadata))
                for b in range(bands):
                    band = ds.GetRasterBand(b + 1)
                    band.SetNoDataValue(float("nan"))
                    if b < len(descriptions):
                        band.SetDescription(descriptions[b])
            return ds

        self._ds, detail = gdal_try(create)
        if detail:
            raise self._failed(detail)

    def __enter__(self) -> GeoTiffWriter:
        return self

    def __exit__(self, kind, *_exc) -> None:
        if kind is not None:
            self.abort()

    def _failed(self, detail: str) -> EmbeddingExportError:
        """The error for GDAL's ``detail`` (judged before the partial file goes), after :meth:`abort`."""
        exc = fs.library_error(detail, "write", WHAT, self.path, EmbeddingExportError)
        self.abort()
        return exc  # type: ignore[return-value]

    def write(self, col0: int, row0: int, values: np.ndarray) -> None:
        """Write ``[bands, h, w]`` at cell ``(col0, row0)``."""
        data = values.astype(np.float16).astype(np.float32) if self.float16 else values.astype(np.float32)
        ds = self._ds

        def write_bands() -> int:
            for b in range(data.shape[0]):
                code = ds.GetRasterBand(b + 1).WriteArray(data[b], col0, row0)
                if code != 0:
                    return code
            return 0

        _, detail = gdal_try(write_bands, returned_error_code)
        if detail:
            raise self._failed(detail)

    def commit(self) -> None:
        """Flush, close and rename over the destination."""
        held, self._ds = [self._ds], None
        _, detail = gdal_try(lambda: _close(held), reported_error)
        if detail:
            raise self._failed(detail)
        try:
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.abort()
            raise fs.os_error(exc, "write", WHAT, self.path, "close it in other programs (or choose another name), "
                              "then export again", EmbeddingExportError) from None

    def abort(self) -> None:
        self._ds = None
        with contextlib.suppress(OSError):
            os.remove(self._tmp)


def _close(held: List[Any]) -> None:
    """Flush and close the dataset ``held`` (its only reference), so that GDAL reports what failed."""
    ds = held.pop()
    try:
        ds.FlushCache()
        if hasattr(ds, "Close"):  # GDAL >= 3.8: the errors of the last writes
            ds.Close()
    finally:
        del ds


def write_geotiff(path: str, values: np.ndarray, gt: GeoTransform, crs_wkt: str,
                  descriptions: Sequence[str] = ()) -> None:
    """Write ``[bands, rows, cols]`` float values (NaN: nodata) atomically."""
    bands, rows, cols = values.shape
    with GeoTiffWriter(check_output_path(path), cols, rows, bands, gt, crs_wkt, descriptions=descriptions) as w:
        w.write(0, 0, values)
        w.commit()


def _overlapping(crops: Sequence[CropSpec], grid: CellGrid, window: Window) -> List[CropSpec]:
    """Crops whose source pixels meet the window's cells."""
    c0, r0 = window.col0 * grid.cell_w, window.row0 * grid.cell_h
    c1, r1 = c0 + window.cols * grid.cell_w, r0 + window.rows * grid.cell_h
    out = []
    for crop in crops:
        a0, b0, a1, b1 = crop.source_bounds
        if a0 < c1 and a1 > c0 and b0 < r1 and b1 > r0:
            out.append(crop)
    return out


def sample_cells(crops: Sequence[CropSpec], features: FeatureFn, grid: CellGrid, window: Window,
                 max_samples: int = PCA_SAMPLES,
                 is_canceled: Callable[[], bool] = lambda: False) -> np.ndarray:
    """``[S, C]`` float32 vectors of crop cells whose centre lies in ``window``, every ``k``-th cell
    of each crop on both axes (``k`` keeps S at most ``max_samples``)."""
    crops = _overlapping(crops, grid, window)
    step = max(1, math.ceil(math.sqrt(len(crops) * 64 * 64 / max_samples)))
    x0, y0 = window.col0 * grid.cell_w, window.row0 * grid.cell_h
    x1, y1 = x0 + window.cols * grid.cell_w, y0 + window.rows * grid.cell_h
    parts = []
    for crop in crops:
        if is_canceled():
            raise ExportCancelledError("cancelled")
        f = features(crop)
        _, rows, cols = f.values.shape
        ys = crop.row0 + (np.arange(0, rows, step) + 0.5) * f.cell[0] * crop.scale
        xs = crop.col0 + (np.arange(0, cols, step) + 0.5) * f.cell[1] * crop.scale
        ri = np.arange(0, rows, step)[(ys >= y0) & (ys < min(y1, grid.height))]
        ci = np.arange(0, cols, step)[(xs >= x0) & (xs < min(x1, grid.width))]
        if ri.size and ci.size:
            parts.append(f.values[:, ri][:, :, ci].reshape(f.values.shape[0], -1).T)
    if not parts:
        raise EmbeddingExportError("no encoded cell lies in the extent")
    samples = np.concatenate(parts)
    return samples[:: max(1, math.ceil(samples.shape[0] / max_samples))]


def export_embeddings(path: str, crops: Sequence[CropSpec], features: FeatureFn, grid: CellGrid, window: Window,
                      raster_gt: GeoTransform, crs_wkt: str, components: int = 3, float16: bool = False,
                      metadata: Optional[Dict[str, str]] = None, is_canceled: Callable[[], bool] = lambda: False,
                      on_progress: Optional[Callable[[float], None]] = None) -> ExportResult:
    """Write ``window``'s cells of the stitched embeddings of ``crops`` to ``path``.

    Args:
        components: principal components to write (1..C), or 0 for every channel as is.
        float16: half floats (half the size) instead of float32.
        metadata: GDAL dataset metadata to store (encoder, raster).
    Raises:
        ExportCancelledError: ``is_canceled`` turned True; nothing was written.
        EmbeddingExportError: bad destination, nothing encoded there, or GDAL failed.
    """
    path = check_output_path(path)
    if window.rows < 1 or window.cols < 1:
        raise EmbeddingExportError("the extent holds no embedding cell of the raster")
    progress = on_progress or (lambda _f: None)
    pca = None
    if components:
        pca = Pca.fit(sample_cells(crops, features, grid, window, is_canceled=is_canceled), components)
        progress(0.2)
    channels = pca.components.shape[0] if pca is not None else features(crops[0]).values.shape[0]
    names = ([f"PC{i + 1} ({100 * e:.1f} % of variance)" for i, e in enumerate(pca.explained)] if pca is not None
             else [f"embedding channel {i}" for i in range(channels)])
    tiles = [(i, j) for i in range(0, window.rows, TILE) for j in range(0, window.cols, TILE)]
    start = 0.2 if pca is not None else 0.0
    with GeoTiffWriter(path, window.cols, window.rows, channels, grid.geotransform(raster_gt, window), crs_wkt,
                       float16, names, metadata) as writer:
        for n, (i, j) in enumerate(tiles):
            tile = Window(window.row0 + i, window.col0 + j, min(TILE, window.rows - i), min(TILE, window.cols - j))
            blender = Blender(grid, tile, channels)
            for crop in _overlapping(crops, grid, tile):
                if is_canceled():
                    raise ExportCancelledError("cancelled")
                f = features(crop)
                blender.add(crop, pca.project(f.values) if pca is not None else f.values, f.cell)
            writer.write(j, i, blender.result())
            progress(start + (1 - start) * (n + 1) / len(tiles))
        if is_canceled():
            raise ExportCancelledError("cancelled")
        writer.commit()
    explained = tuple(float(e) for e in pca.explained) if pca is not None else ()
    return ExportResult(path, channels, (window.cols, window.rows), grid.geotransform(raster_gt, window), explained)
