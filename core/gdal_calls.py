"""GDAL calls that behave the same whether GDAL's Python exceptions are on or off (GDAL adapter).

QGIS 3.44's Processing calls ``gdal.UseExceptions()`` for the whole process; QGIS 3.22 leaves
exceptions off, and any script may switch them. A failing call then either raises
``RuntimeError`` or returns None (or a non-zero error code): :func:`gdal_try` turns both into
GDAL's message, and keeps GDAL's own printing off stderr (the handler stack is per thread).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, List, Sequence, Tuple

import numpy as np

from .errors import SegmentationError


class GdalError(SegmentationError):
    """GDAL failed on in-memory data (no file involved)."""


def _gdal() -> Any:
    from osgeo import gdal

    return gdal


@contextlib.contextmanager
def quiet_gdal() -> Iterator[Any]:
    """GDAL (the module) with its last error reset and its messages kept from stderr."""
    gdal = _gdal()
    gdal.ErrorReset()
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield gdal
    finally:
        gdal.PopErrorHandler()


@contextlib.contextmanager
def _collecting() -> Iterator[List[str]]:
    """Every message GDAL reports meanwhile, kept from stderr."""
    gdal, messages = _gdal(), []
    gdal.ErrorReset()
    gdal.PushErrorHandler(lambda _cls, _no, msg: messages.append(str(msg)))
    try:
        yield messages
    finally:
        gdal.PopErrorHandler()


def _detail(messages: List[str]) -> str:
    """The message that names the failing block, else the last: GDAL 3.7 and later report the
    codec's own error ("TIFFReadEncodedTile() failed") after the block's."""
    return next((m for m in messages if "IReadBlock failed" in m), messages[-1] if messages else "")


def returned_none(out: Any) -> bool:
    """The failure test of calls that return an object (datasets, drivers' Create)."""
    return out is None


def returned_error_code(out: Any) -> bool:
    """The failure test of calls that return a CPLErr or OGRErr (0 is success)."""
    return out != 0


def reported_error(_out: Any) -> bool:
    """The failure test of calls that return nothing useful: GDAL reported a failure meanwhile."""
    gdal = _gdal()
    return gdal.GetLastErrorType() >= gdal.CE_Failure


def gdal_try(fn: Callable[[], Any], failed: Callable[[Any], bool] = returned_none) -> Tuple[Any, str]:
    """``(fn(), "")`` when the call worked; ``(None, GDAL's message)`` when GDAL raised
    ``RuntimeError`` or ``failed(result)`` is True (default: the result is None)."""
    with _collecting() as messages:
        try:
            out = fn()
        except RuntimeError as exc:
            return None, _detail([*messages, str(exc)]) or "unknown error"
        if failed(out):
            return None, _detail(messages) or _gdal().GetLastErrorMsg() or "unknown error"
        return out, ""


def memory_vectors() -> Any:
    """A new, empty in-memory OGR data source (driver "MEM" from GDAL 3.11, where "Memory" is
    deprecated; "Memory" before)."""
    from osgeo import ogr

    return (ogr.GetDriverByName("MEM") or ogr.GetDriverByName("Memory")).CreateDataSource("")


def burn(geometries: Sequence[Any], width: int, height: int, geotransform: Sequence[float]) -> np.ndarray:
    """``[height, width]`` bool: the pixels of the grid ``geotransform`` whose centre lies inside any
    of the OGR ``geometries`` (polygons in that grid's frame).

    Raises:
        GdalError: GDAL could not make the grid or burn the polygons.
    """
    from osgeo import ogr

    gdal = _gdal()
    raster, detail = gdal_try(lambda: gdal.GetDriverByName("MEM").Create("", width, height, 1, gdal.GDT_Byte))
    if detail:
        raise GdalError(f"GDAL could not allocate a {width}x{height} grid in memory: {detail}")
    raster.SetGeoTransform(tuple(geotransform))
    store = memory_vectors()
    layer = store.CreateLayer("polygons", geom_type=ogr.wkbMultiPolygon)
    for geometry in geometries:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(geometry)
        layer.CreateFeature(feature)
    # (warns "no spatial reference": grid and polygons share a frame)
    _, detail = gdal_try(lambda: gdal.RasterizeLayer(raster, [1], layer, burn_values=[1]), returned_error_code)
    if detail:
        raise GdalError(f"GDAL could not rasterise {len(geometries)} polygon(s): {detail}")
    return raster.GetRasterBand(1).ReadAsArray() > 0
