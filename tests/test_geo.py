"""Exact coordinate chains: any CRS -> raster CRS -> pixel -> crop frame -> mask grid and back."""

from __future__ import annotations

import math

import numpy as np
import pytest
from osgeo import gdal, osr

from core.raster.crops import CropSpec
from core.raster.geo import (
    PIXEL_GEOTRANSFORM,
    GeoreferencingError,
    extent_to_pixel_bounds,
    invert_geotransform,
    is_identity_geotransform,
    map_to_pixel,
    pixel_to_map,
    sub_geotransform,
)
from core.raster.raster_source import RasterSource

UTM_GT = (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5)
WGS_GT = (10.0, 0.001, 0.0, 50.0, 0.0, -0.001)
ROT_GT = (1000.0, math.cos(math.radians(30)), math.sin(math.radians(30)),
          2000.0, math.sin(math.radians(30)), -math.cos(math.radians(30)))
SHEAR_GT = (0.0, 2.0, 0.7, 0.0, -0.3, -1.5)
WEB_MERCATOR_15E = 15.0 * math.pi / 180.0 * 6378137.0  # x of longitude 15 deg in EPSG:3857


def _tif(path, gt, epsg=None, size=(64, 48)):
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size[0], size[1], 3, gdal.GDT_Byte)
    if gt is not None:
        ds.SetGeoTransform(gt)
    if epsg is not None:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    ds.FlushCache()
    del ds
    return str(path)


def test_utm_pixel_round_trip_exact():
    px = map_to_pixel(UTM_GT, [(500100.25, 4999900.75), (500000.0, 5000000.0)])
    np.testing.assert_array_equal(px, [[200.5, 198.5], [0.0, 0.0]])
    np.testing.assert_array_equal(pixel_to_map(UTM_GT, px), [[500100.25, 4999900.75], [500000.0, 5000000.0]])


def test_epsg4326_pixel_exact():
    px = map_to_pixel(WGS_GT, [(10.5, 49.25), (10.0005, 49.9995)])
    np.testing.assert_allclose(px, [[500.0, 750.0], [0.5, 0.5]], atol=1e-9)


@pytest.mark.parametrize("gt", [ROT_GT, SHEAR_GT], ids=["rotated", "sheared"])
def test_rotated_and_sheared_match_gdal(gt):
    pixels = np.array([[0.0, 0.0], [10.0, 20.0], [123.25, 7.5]])
    xy = pixel_to_map(gt, pixels)
    x0, a, b, y0, d, e = gt
    np.testing.assert_allclose(xy[1], [x0 + 10 * a + 20 * b, y0 + 10 * d + 20 * e], atol=1e-12)
    np.testing.assert_allclose(map_to_pixel(gt, xy), pixels, atol=1e-9)
    np.testing.assert_allclose(invert_geotransform(gt), gdal.InvGeoTransform(gt), atol=1e-12)


def test_rotated_extent_bounds_is_parallelogram_bbox():
    corners = pixel_to_map(ROT_GT, [(0, 0), (100, 0), (0, 50), (100, 50)])
    ext = (corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max())
    c0, r0, c1, r1 = extent_to_pixel_bounds(ROT_GT, ext)
    assert c0 < 0 and r0 < 0 and c1 > 100 and r1 > 50  # the axis-aligned extent holds more pixels
    inv = gdal.InvGeoTransform(ROT_GT)
    ref = np.array([gdal.ApplyGeoTransform(inv, x, y) for x in ext[::2] for y in ext[1::2]])
    assert (c0, r0, c1, r1) == pytest.approx((*ref.min(axis=0), *ref.max(axis=0)), abs=1e-9)


def test_crop_and_mask_grid_geotransform_exact():
    crop = CropSpec(768, 1024, 1024, 1024, 1)
    gt = crop.geotransform(UTM_GT)
    assert gt == (500384.0, 0.5, 0.0, 4999488.0, 0.0, -0.5)
    coarse = CropSpec(1024, 2048, 1024, 1024, 4)
    assert coarse.geotransform(UTM_GT) == (500512.0, 2.0, 0.0, 4998976.0, 0.0, -2.0)
    # map -> source pixel -> frame pixel, and frame pixel -> map through the mask grid
    frame = coarse.to_frame(map_to_pixel(UTM_GT, [(500600.0, 4998900.0)]))
    np.testing.assert_array_equal(frame, [[44.0, 38.0]])
    np.testing.assert_array_equal(pixel_to_map(coarse.geotransform(UTM_GT), frame), [[500600.0, 4998900.0]])
    rot = sub_geotransform(ROT_GT, 10, 20, 2)
    np.testing.assert_allclose(pixel_to_map(rot, [(3, 4)]), pixel_to_map(ROT_GT, [(16, 28)]), atol=1e-9)


def test_degenerate_geotransform_is_a_clear_error():
    with pytest.raises(GeoreferencingError, match="zero-area pixel"):
        map_to_pixel((0.0, 0.0, 0.0, 0.0, 0.0, -1.0), [(1, 1)])


def test_utm_and_epsg4326_rasters_read_exactly(tmp_path):
    utm = RasterSource.open(_tif(tmp_path / "utm.tif", UTM_GT, 32633))
    assert utm.georeferenced and utm.notice is None and utm.geotransform == UTM_GT
    assert osr.SpatialReference(wkt=utm.crs_wkt).GetAuthorityCode(None) == "32633"
    wgs = RasterSource.open(_tif(tmp_path / "wgs.tif", WGS_GT, 4326))
    assert wgs.geotransform == WGS_GT
    assert osr.SpatialReference(wkt=wgs.crs_wkt).GetAuthorityCode(None) == "4326"


def test_png_without_georeferencing_uses_qgis_pixel_frame(tmp_path, qgis_app):
    from qgis.core import QgsRasterLayer

    mem = gdal.GetDriverByName("MEM").Create("", 300, 200, 3)
    gdal.GetDriverByName("PNG").CreateCopy(str(tmp_path / "plain.png"), mem)
    del mem
    src = RasterSource.open(str(tmp_path / "plain.png"))
    assert not src.georeferenced and src.geotransform == PIXEL_GEOTRANSFORM
    assert "no georeferencing" in src.notice and "pixel coordinates" in src.notice
    assert is_identity_geotransform(None) and not is_identity_geotransform(PIXEL_GEOTRANSFORM)
    np.testing.assert_array_equal(map_to_pixel(src.geotransform, [(10.5, -20.5)]), [[10.5, 20.5]])
    layer = QgsRasterLayer(str(tmp_path / "plain.png"), "plain")  # QGIS shows it at x = col, y = -row
    e = layer.extent()
    assert (e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()) == (0.0, -200.0, 300.0, 0.0)
    del layer


def test_canvas_3857_over_utm_raster(tmp_path, qgis_app):
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransformContext

    from core.raster.qgis_raster import extent_to_raster_crs, points_to_raster_crs, prompt_from_canvas

    src = RasterSource.open(_tif(tmp_path / "eq.tif", (499000.0, 10.0, 0.0, 10000.0, 0.0, -10.0), 32633))
    canvas = QgsCoordinateReferenceSystem("EPSG:3857")
    ctx = QgsCoordinateTransformContext()
    # longitude 15 deg (UTM 33N central meridian) on the equator is UTM (500000, 0) exactly
    (x, y), = points_to_raster_crs([(WEB_MERCATOR_15E, 0.0)], canvas, src, ctx)
    assert x == pytest.approx(500000.0, abs=1e-6) and y == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(map_to_pixel(src.geotransform, [(x, y)]), [[100.0, 1000.0]], atol=1e-7)
    # off the central meridian: agree with GDAL/PROJ directly
    ref = osr.CoordinateTransformation(_srs(3857), _srs(32633)).TransformPoint(1700000.0, 50000.0)
    (x2, y2), = points_to_raster_crs([(1700000.0, 50000.0)], canvas, src, ctx)
    assert (x2, y2) == pytest.approx(ref[:2], abs=1e-4)
    box = (WEB_MERCATOR_15E - 100, -100.0, WEB_MERCATOR_15E + 100, 100.0)
    ext = extent_to_raster_crs(box, canvas, src, ctx)
    # UTM's scale factor on its central meridian is 0.9996; north-south, EPSG:3857's spherical
    # latitude meets the WGS84 meridian radius a(1 - e^2) at the equator
    dy = 100.0 * (1 - 0.00669437999014) * 0.9996
    assert ext == pytest.approx((500000 - 99.96, -dy, 500000 + 99.96, dy), abs=0.005)
    prompt = prompt_from_canvas([(WEB_MERCATOR_15E, 0.0)], [1], None, canvas, src, ctx)
    assert prompt.labels == (1,) and prompt.points[0] == pytest.approx((500000.0, 0.0), abs=1e-6)
    same = points_to_raster_crs([(1.5, 2.5)], QgsCoordinateReferenceSystem("EPSG:32633"), src, ctx)
    assert same == ((1.5, 2.5),)


def _srs(epsg):
    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return s


def test_source_from_layer(tmp_path, qgis_app):
    from qgis.core import QgsRasterLayer

    from core.raster.qgis_raster import LayerError, source_from_layer

    layer = QgsRasterLayer(_tif(tmp_path / "l.tif", UTM_GT, 32633), "l")
    src = source_from_layer(layer, bands=[3, 2, 1])
    assert src.bands == (3, 2, 1) and src.geotransform == UTM_GT and "UTM" in src.crs_wkt
    del layer
    with pytest.raises(LayerError, match="valid raster layer"):
        source_from_layer(QgsRasterLayer(str(tmp_path / "missing.tif"), "m"))


def test_gcp_only_raster_is_warped_as_qgis_shows_it(tmp_path, qgis_app):
    from qgis.core import QgsRasterLayer

    path = str(tmp_path / "gcp.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 200, 100, 1)
    ds.GetRasterBand(1).WriteArray((np.arange(20000).reshape(100, 200) % 251).astype(np.uint8))
    gcps = [gdal.GCP(500000 + 2 * c, 5000000 - 2 * r, 0, c, r) for c, r in ((0, 0), (200, 0), (0, 100), (200, 100))]
    ds.SetGCPs(gcps, _srs(32633).ExportToWkt())
    del ds
    src = RasterSource.open(path)
    assert src.georeferenced and src.name == "gcp.tif" and src.notice is None
    assert src.geotransform == pytest.approx((500000.0, 2.0, 0.0, 5000000.0, 0.0, -2.0))
    assert (src.width, src.height) == (200, 100)
    img = src.read(CropSpec(0, 0, 200, 100))
    np.testing.assert_array_equal(img[..., 0], np.arange(20000).reshape(100, 200) % 251)
    layer = QgsRasterLayer(path, "gcp")
    e = layer.extent()
    assert (e.xMinimum(), e.yMaximum(), e.width()) == pytest.approx((500000.0, 5000000.0, 400.0))
    del layer
