"""Signed 8-bit rasters are stretched like any non-byte raster, found without GDAL's PIXELTYPE warning.

GDAL >= 3.7 reads a signed-byte GeoTIFF as GDT_Int8 and warns, once per band, when asked for
the old ``PIXELTYPE=SIGNEDBYTE`` marker; older GDAL has only that marker on a Byte band.
"""

from __future__ import annotations

from typing import List

import numpy as np
import pytest
from osgeo import gdal

from core.raster.raster_source import RasterSource

GT = (300000.0, 1.0, 0.0, 6000000.0, 0.0, -1.0)
# 0..100: the same bytes whether read as signed or unsigned, so one expected stretch fits all GDALs.
VALUES = (np.arange(40 * 30) % 101).reshape(30, 40)


def write(path, signed: bool) -> str:
    if signed and hasattr(gdal, "GDT_Int8"):
        dtype, options = gdal.GDT_Int8, []
    else:
        dtype, options = gdal.GDT_Byte, ["PIXELTYPE=SIGNEDBYTE"] if signed else []
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 40, 30, 3, dtype, options)
    ds.SetGeoTransform(GT)
    for i in (1, 2, 3):
        ds.GetRasterBand(i).WriteArray(VALUES.astype(np.uint8))
    del ds
    return str(path)


def open_collecting_gdal_messages(path: str) -> tuple:
    messages: List[str] = []
    gdal.PushErrorHandler(lambda _cls, _no, msg: messages.append(msg))
    try:
        return RasterSource.open(path), messages
    finally:
        gdal.PopErrorHandler()


def test_signed_bytes_are_stretched_without_a_gdal_warning(tmp_path):
    src, messages = open_collecting_gdal_messages(write(tmp_path / "signed.tif", signed=True))
    assert messages == []
    lo_hi = tuple(np.percentile(VALUES, [2, 98]))
    assert all(s == pytest.approx(lo_hi) for s in src.stretch), src.stretch


def test_plain_bytes_are_kept_as_they_are(tmp_path):
    src, messages = open_collecting_gdal_messages(write(tmp_path / "plain.tif", signed=False))
    assert messages == []
    assert src.stretch == (None, None, None)
