"""The plugin's GDAL code behaves the same with GDAL's Python exceptions on and off.

QGIS 3.44's Processing turns them on for the whole process (``gdal.UseExceptions()``); QGIS 3.22
leaves them off. Each case runs both ways (see ``gdal_modes``), also on GDAL 3.6: same values, and
the plugin's own error where GDAL fails (never a raw ``RuntimeError``), nothing left behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fs_cases import run_script, small_disk
from gdal_modes import MODES, gdal_exceptions
from osgeo import gdal, ogr, osr

from core import polygon_exporter as pe
from core.coco.coco_geometry import rasterize, to_pixel_object
from core.embeddings.embedding_export import EmbeddingExportError, GeoTiffWriter, write_geotiff
from core.embeddings.signatures import Example, SimilarityError, coverage, example_crops
from core.raster.geo import PIXEL_GEOTRANSFORM
from core.raster.raster_source import RasterSource
from core.segment.mask_ops import NO_REFINE, RefineParams

UTM_GT = (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5)


@pytest.fixture(params=MODES)
def mode(request):
    with gdal_exceptions(request.param == MODES[1]):
        yield request.param


def _reference(fn):
    """``fn()`` with exceptions off: what both modes must give."""
    with gdal_exceptions(False):
        return fn()


def test_the_switch_is_real_and_restored():
    before = gdal.GetUseExceptions(), ogr.GetUseExceptions(), osr.GetUseExceptions()
    with gdal_exceptions(True):
        with pytest.raises(RuntimeError):
            gdal.Open("/no/such/raster.tif")
        with gdal_exceptions(False):
            assert gdal.Open("/no/such/raster.tif") is None
        assert gdal.GetUseExceptions() and ogr.GetUseExceptions() and osr.GetUseExceptions()
    assert (gdal.GetUseExceptions(), ogr.GetUseExceptions(), osr.GetUseExceptions()) == before


# --- polygons ------------------------------------------------------------------------------------


def _mask() -> np.ndarray:
    m = np.zeros((300, 400), bool)
    m[20:200, 30:250] = True
    m[60:90, 60:120] = False  # a hole
    m[250:260, 300:390] = True  # a second part
    return m


@pytest.mark.parametrize("params", [NO_REFINE, RefineParams()])
def test_polygons_are_the_same_both_ways(mode, params):
    want = _reference(lambda: pe.mask_to_polygons(_mask(), UTM_GT, "", params))
    got = pe.mask_to_polygons(_mask(), UTM_GT, "", params)
    assert got == want and got.n_parts == 2 and got.n_holes == 1


def test_polygonize_failure_is_the_plugins_error(mode):
    """GDAL refuses an empty window (its only failure a caller can cause): returned None, or raised.
    GDAL 3.6 refuses the 0 x 5 dataset; GDAL 3.13 makes it and fails in Polygonize instead."""
    with pytest.raises(pe.PolygonizeError, match=r"GDAL (could not allocate a 0x5 mask in memory: .*larger than zero"
                                                 r"|Polygonize failed)"):
        pe._polygonize(np.zeros((5, 0), bool), 0, 0)


# --- rasters ---------------------------------------------------------------------------------------


def _gcp_raster(path: Path, gcps) -> str:
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 60, 40, 3, gdal.GDT_Byte)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetGCPs([gdal.GCP(x, y, 0.0, col, row) for x, y, col, row in gcps], srs.ExportToWkt())
    ds.GetRasterBand(1).Fill(7)
    del ds
    return str(path)


def test_gcp_raster_that_cannot_be_warped(mode, tmp_path):
    """Collinear GCPs: GDAL cannot compute a warp; the raster opens in pixel coordinates both ways."""
    path = _gcp_raster(tmp_path / "collinear.tif", [(500000, 5000000, 0, 0), (500010, 4999990, 10, 10),
                                                    (500020, 4999980, 20, 20)])
    src = RasterSource.open(path)
    assert (src.geotransform, src.georeferenced, src.width, src.height) == (PIXEL_GEOTRANSFORM, False, 60, 40)
    good = RasterSource.open(_gcp_raster(tmp_path / "good.tif", [(500000, 5000000, 0, 0), (500060, 5000000, 60, 0),
                                                                 (500000, 4999960, 0, 40)]))
    assert good.georeferenced and good.geotransform == pytest.approx((500000, 1, 0, 5000000, 0, -1))


# --- COCO and similarity geometry --------------------------------------------------------------------


WKT = {
    "bowtie": "POLYGON((0 0,10 -10,10 0,0 -10,0 0))",  # self-intersecting: repaired
    "square with hole": "POLYGON((0 0,20 0,20 -20,0 -20,0 0),(5 -5,5 -10,10 -10,10 -5,5 -5))",
    "line": "LINESTRING(0 0,10 -10)",  # no area
}


@pytest.mark.parametrize("name", sorted(WKT))
def test_coco_geometry_is_the_same_both_ways(mode, name):
    wkb = bytes(ogr.CreateGeometryFromWkt(WKT[name]).ExportToIsoWkb())

    def run():
        obj = to_pixel_object(1, "x", wkb, PIXEL_GEOTRANSFORM)
        return None if obj is None else (obj.area, obj.bounds, obj.geometry.ExportToIsoWkt())

    want = _reference(run)
    assert run() == want
    assert (want is None) == (name == "line")
    assert to_pixel_object(2, "x", b"\x01\x03\x00\x00\x00\xff", PIXEL_GEOTRANSFORM) is None  # unreadable WKB
    square = [np.array([[0, 0], [8, 0], [8, 6], [0, 6], [0, 0]], float)]
    assert rasterize([square], 12, 10).sum() == 48


def test_similarity_coverage_is_the_same_both_ways(mode):
    geom = ogr.CreateGeometryFromWkt("POLYGON((0 0,10 0,10 -10,0 -10,0 0))")
    cover = coverage([geom], (0, 1, 0, 0, 0, -1), 20, 20)
    assert cover.sum() == pytest.approx(100.0) and cover[:10, :10].min() == 1.0


# --- GeoTIFF writes ------------------------------------------------------------------------------


def test_geotiff_that_gdal_cannot_create(mode, tmp_path):
    with pytest.raises(EmbeddingExportError, match=r"cannot write the GeoTIFF '.*a\.tif': GDAL: .*larger than zero"):
        GeoTiffWriter(str(tmp_path / "a.tif"), 0, 5, 1, UTM_GT, "")
    assert os.listdir(tmp_path) == []  # the temporary file went too


@pytest.mark.parametrize("gdal_mode", MODES)
def test_geotiff_on_a_full_disk(tmp_path, gdal_mode):
    """4 MiB of random floats onto a real 2 MiB disk: the plugin's message, nothing left, both ways."""
    disk = tmp_path / "disque plein"
    disk.mkdir()
    result = run_script(f"""
    import numpy as np
    from gdal_modes import set_mode
    set_mode({gdal_mode!r})
    from core.embeddings.embedding_export import EmbeddingExportError, write_geotiff
    values = np.random.default_rng(0).random((16, 256, 256)).astype(np.float32)
    try:
        write_geotiff(os.path.join({str(disk)!r}, "emb.tif"), values, (0, 1, 0, 0, 0, -1), "")
        got = "ok"
    except EmbeddingExportError as exc:
        got = str(exc)
    except Exception as exc:
        got = "raw " + type(exc).__name__ + ": " + str(exc)
    print(json.dumps({{"got": got, "files": sorted(os.listdir({str(disk)!r}))}}))
    """, tmp_path, small_disk(disk, "2m"))
    path = disk / "emb.tif"
    assert result["got"] == (f"cannot write the GeoTIFF '{path}': the disk is full; free some space, or choose a "
                             "folder on another disk")
    assert result["files"] == []


def test_geotiff_round_trip_both_ways(mode, tmp_path):
    values = np.arange(2 * 30 * 40, dtype=np.float32).reshape(2, 30, 40)
    write_geotiff(str(tmp_path / "v.tif"), values, UTM_GT, "", ["a", "b"])
    ds = gdal.Open(str(tmp_path / "v.tif"))
    np.testing.assert_array_equal(ds.ReadAsArray(), values)
    assert ds.GetGeoTransform() == UTM_GT and ds.GetRasterBand(2).GetDescription() == "b"
    del ds
    assert os.listdir(tmp_path) == ["v.tif"]


def test_unreadable_example_is_the_plugins_error(mode):
    from core.raster.crops import CropGrid

    with pytest.raises(SimilarityError, match="example 7 is not a polygon"):
        example_crops(CropGrid(500, 400), UTM_GT, Example(7, b"\x01\x03\x00\x00\x00\xff"))


@pytest.mark.parametrize("gdal_mode", MODES)
def test_coco_export_on_a_full_disk(tmp_path, gdal_mode):
    """Random-texture chips onto a real 512 KiB disk: the plugin's message naming the folder or the
    chip, nothing kept, both ways. Before: GDAL's own words ("GDAL could not write ...") or raw OSError text."""
    raster = tmp_path / "ortho.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(raster), 1024, 1024, 3, gdal.GDT_Byte)
    ds.SetGeoTransform(UTM_GT)
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(np.random.default_rng(b).integers(0, 256, (1024, 1024), dtype=np.uint8))
    del ds
    disk = tmp_path / "disque plein"
    disk.mkdir()
    result = run_script(f"""
    from osgeo import ogr
    from gdal_modes import set_mode
    set_mode({gdal_mode!r})
    from core.coco.coco_export import CocoExportParams, SourcePolygon, export_coco
    from core.coco.coco_writer import CocoExportError
    from core.raster.raster_source import RasterSource
    def square(x, y):
        ring = f"{{x}} {{y}},{{x + 20}} {{y}},{{x + 20}} {{y - 20}},{{x}} {{y - 20}},{{x}} {{y}}"
        return bytes(ogr.CreateGeometryFromWkt(f"POLYGON(({{ring}}))").ExportToIsoWkb())
    squares = [SourcePolygon(k, "roof", square(500000 + 60 * k, 5000000 - 60 * k)) for k in range(8)]
    try:
        export_coco(RasterSource.open({str(raster)!r}), squares, CocoExportParams(chip_size=256),
                    os.path.join({str(disk)!r}, "dataset"))
        got = "ok"
    except CocoExportError as exc:
        got = str(exc)
    except Exception as exc:
        got = "raw " + type(exc).__name__ + ": " + str(exc)
    files = sorted(os.path.relpath(os.path.join(d, f), {str(disk)!r}) for d, _, fs in os.walk({str(disk)!r})
                   for f in fs)
    print(json.dumps({{"got": got, "files": files}}))
    """, tmp_path, small_disk(disk))
    dataset = disk / "dataset"
    assert result["got"].startswith((f"cannot write the OUTPUT_FOLDER '{dataset}': the disk is full;",
                                     f"cannot write the chip '{dataset}/")), result["got"]
    assert "the disk is full; free some space, or choose a folder on another disk" in result["got"]
    assert result["files"] == []
