"""File-system conditions through real Processing runs (issue #13, item 1): the OUTPUT is checked
before any encoding, a damaged raster and an unusable cache folder get the plugin's messages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fs_cases import permissions_apply, run_script
from osgeo import gdal, ogr, osr
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback, QgsSettings

from tools.plugin_package import plugin_module

UTM_GT = (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5)


@pytest.fixture(scope="module")
def provider(qgis_processing):
    registry = QgsApplication.processingRegistry()
    prov = plugin_module("processing_provider.provider").AISegmentationProvider()
    assert registry.addProvider(prov)
    yield prov
    registry.removeProvider(prov)


@pytest.fixture
def cache_dir(tmp_path):
    settings, key = QgsSettings(), "ai_segmentation/cache_dir"
    old = settings.value(key, None)
    settings.setValue(key, str(tmp_path / "cache"))
    yield tmp_path / "cache"
    if old is None:
        settings.remove(key)
    else:
        settings.setValue(key, old)


def geotiff(path: Path, width: int = 1300, height: int = 900) -> str:
    """3-band UInt16, one-row strips, UTM 33N."""
    ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 3, gdal.GDT_UInt16)
    ds.SetGeoTransform(UTM_GT)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(4)
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(rng.integers(100, 4000, (height, width)).astype(np.uint16))
    del ds
    return str(path)


def cut_at_strip(path: str, row: int) -> str:
    """Truncate a stripped GeoTIFF where strip ``row`` begins: GDAL opens it, the strips before
    are whole, every later one is missing."""
    ds = gdal.Open(path)
    offset = int(ds.GetRasterBand(1).GetMetadataItem(f"BLOCK_OFFSET_0_{row}", "TIFF"))
    del ds
    with open(path, "r+b") as f:
        f.truncate(offset)
    return path


def prompts(path: Path) -> str:
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    layer = ds.CreateLayer("p", srs, ogr.wkbPoint)
    f = ogr.Feature(layer.GetLayerDefn())
    f.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT({UTM_GT[0] + 50} {UTM_GT[3] - 40})"))  # pixel (100, 80)
    layer.CreateFeature(f)
    del layer, ds
    return str(path)


def models(tiny_paths) -> dict:
    return {"ENCODER": str(tiny_paths["encoder_preproc"]), "DECODER": str(tiny_paths["decoder"])}


def run(alg: str, params: dict, feedback=None) -> dict:
    import processing

    return processing.run(f"aisegmentation:{alg}", params, feedback=feedback)


def embeddings(cache: Path) -> list:
    return list((cache / "embeddings").rglob("*.npy")) if cache.exists() else []


def test_truncated_raster_in_processing(provider, cache_dir, tiny_paths, tmp_path):
    """Before: "GDAL could not read pixels (0, 0, 1024, 1024): ...: IReadBlock failed at X offset 0,
    Y offset 600: TIFFReadEncodedStrip() failed." only."""
    path = cut_at_strip(geotiff(tmp_path / "coupé.tif"), 600)
    with pytest.raises(QgsProcessingException) as info:
        run("encode", {"INPUT": path, "ENCODER": str(tiny_paths["encoder_preproc"])})
    message = str(info.value)
    assert message.startswith(f"the raster '{path}' could not be read at row 600: the file is damaged or "
                              "truncated (GDAL: ")
    assert "IReadBlock failed" in message and message.endswith("); replace it with a good copy")
    assert embeddings(cache_dir) == []


@pytest.mark.parametrize("case", ["missing folder", "a folder", "file in the way", "full disk"])
def test_output_is_checked_before_any_encoding(provider, cache_dir, tiny_paths, tmp_path, monkeypatch, case):
    """Before: the output was created only after every crop had been encoded, and its failure
    read "Could not create layer ...: Creation of data source failed (OGR error: ...)"."""
    raster = geotiff(tmp_path / "r.tif")
    (tmp_path / "a folder.gpkg").mkdir()
    (tmp_path / "plain").write_text("x")
    out = {"missing folder": tmp_path / "nowhere" / "out.gpkg", "a folder": tmp_path / "a folder.gpkg",
           "file in the way": tmp_path / "plain" / "out.gpkg", "full disk": tmp_path / "out.gpkg"}[case]
    if case == "full disk":
        monkeypatch.setattr(plugin_module("core.fs_checks"), "free_bytes", lambda _folder: 4096)
    nowhere = tmp_path / "nowhere"
    words = {"missing folder": f"the folder '{nowhere}' does not exist; create it, or choose another folder",
             "a folder": "it is a folder; choose a file name",
             "file in the way": f"'{tmp_path / 'plain'}' is a file, not a folder; choose another folder",
             "full disk": "the disk is full (4 KiB free); free some space, or choose a folder on another disk"}[case]
    before = sorted(os.listdir(tmp_path))
    feedback = QgsProcessingFeedback()
    seen = []
    feedback.progressChanged.connect(seen.append)
    for alg, extra in (("segment_prompts", {"PROMPTS": prompts(tmp_path / "p.gpkg")}),
                       ("segment_everything", {"POINTS_PER_SIDE": 2})):
        with pytest.raises(QgsProcessingException) as info:
            run(alg, {"INPUT": raster, "OUTPUT": str(out), **models(tiny_paths), **extra}, feedback)
        assert str(info.value) == f"cannot write the output file '{out}': {words}"
    assert embeddings(cache_dir) == [] and not seen  # no encoding, no progress: nothing was done
    assert sorted(os.listdir(tmp_path)) == sorted([*before, "p.gpkg"])


def test_unknown_extension_is_written_as_qgis_does(provider, cache_dir, tiny_paths, tmp_path):
    """QGIS appends the default extension to an unknown one; the check looks at that file."""
    raster = geotiff(tmp_path / "r.tif", 300, 200)
    (tmp_path / "out.xyz.gpkg").mkdir()
    with pytest.raises(QgsProcessingException, match=r"out\.xyz\.gpkg': it is a folder"):
        run("segment_prompts", {"INPUT": raster, "PROMPTS": prompts(tmp_path / "p.gpkg"),
                                "OUTPUT": str(tmp_path / "out.xyz"), **models(tiny_paths)})
    (tmp_path / "out.xyz.gpkg").rmdir()
    result = run("segment_prompts", {"INPUT": raster, "PROMPTS": prompts(tmp_path / "p2.gpkg"),
                                     "OUTPUT": str(tmp_path / "out.xyz"), **models(tiny_paths)})
    assert result["OUTPUT"] == str(tmp_path / "out.xyz.gpkg") and os.path.isfile(result["OUTPUT"])


def test_cache_home_that_is_a_file(provider, tiny_paths, tmp_path, monkeypatch):
    """XDG_CACHE_HOME pointing at a file. Before: a NotADirectoryError traceback from the first
    save into the cache. Now: segmenting works on a temporary cache and says so; encoding ahead
    (whose only product is the cache) fails with the message."""
    blocker = tmp_path / "cache-home"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    settings, key = QgsSettings(), "ai_segmentation/cache_dir"
    old = settings.value(key, None)
    settings.remove(key)  # the per-user default, under XDG_CACHE_HOME
    try:
        raster = geotiff(tmp_path / "r.tif", 300, 200)
        wanted = blocker / "qgis-ai-segmentation"
        with pytest.raises(QgsProcessingException) as info:
            run("encode", {"INPUT": raster, "ENCODER": str(tiny_paths["encoder_preproc"])})
        assert str(info.value) == (f"cannot create the embedding cache folder '{wanted}': '{blocker}' is a file, "
                                   "not a folder; choose another embedding cache folder in Settings > Options > "
                                   "AI Segmentation")
        feedback = QgsProcessingFeedback()
        warnings = []
        feedback.pushWarning = warnings.append
        result = run("segment_prompts", {"INPUT": raster, "PROMPTS": prompts(tmp_path / "p.gpkg"),
                                         "OUTPUT": str(tmp_path / "out.gpkg"), **models(tiny_paths)}, feedback)
        assert os.path.isfile(result["OUTPUT"])
        assert any(w.startswith(f"Cannot create the embedding cache folder '{wanted}'") and "temporary folder" in w
                   for w in warnings), warnings
        assert blocker.read_text() == "x"
    finally:
        if old is not None:
            settings.setValue(key, old)


def test_permissions_in_processing(tiny_paths, tmp_path):
    """Read-only OUTPUT folder, unreadable ENCODER, read-only cache folder, with permission bits
    that apply (a child without root's DAC override)."""
    raster = geotiff(tmp_path / "r.tif", 300, 200)
    point = prompts(tmp_path / "p.gpkg")
    ro = tmp_path / "lecture seule"
    ro.mkdir()
    enc = tmp_path / "secret.encoder.onnx"
    enc.write_bytes(Path(tiny_paths["encoder_preproc"]).read_bytes())
    prefix = permissions_apply()
    ro.chmod(0o555)
    enc.chmod(0o000)
    try:
        result = run_script(f"""
        from qgis.core import QgsSettings
        ro, raster, point = {str(ro)!r}, {raster!r}, {point!r}
        enc, dec = {str(enc)!r}, {str(tiny_paths["decoder"])!r}
        good = {str(tiny_paths["encoder_preproc"])!r}
        QgsSettings().setValue("ai_segmentation/cache_dir", {str(tmp_path / "cache")!r})
        out = {{
            "output": run("segment_prompts", {{"INPUT": raster, "PROMPTS": point, "ENCODER": good, "DECODER": dec,
                                              "OUTPUT": os.path.join(ro, "out.gpkg")}}),
            "encoder": run("segment_prompts", {{"INPUT": raster, "PROMPTS": point, "ENCODER": enc, "DECODER": dec,
                                               "OUTPUT": {str(tmp_path / "o1.gpkg")!r}}}),
        }}
        QgsSettings().setValue("ai_segmentation/cache_dir", ro)
        out["cache encode"] = run("encode", {{"INPUT": raster, "ENCODER": good}})
        out["cache segment"] = run("segment_prompts", {{"INPUT": raster, "PROMPTS": point, "ENCODER": good,
                                                       "DECODER": dec, "OUTPUT": {str(tmp_path / "o2.gpkg")!r}}})
        print(json.dumps(out), flush=True)  # os._exit skips flushing the pipe
        os._exit(0)
        """, tmp_path, prefix, processing=True)
    finally:
        ro.chmod(0o755)
        enc.chmod(0o644)
    assert result["output"] == (f"error: cannot write the output file '{ro / 'out.gpkg'}': permission denied; "
                                "choose a folder you can write to")
    assert result["encoder"] == (f"error: cannot read the SAM encoder file '{enc}': permission denied; give "
                                 "yourself read access to it, or copy it to a folder of yours")
    assert result["cache encode"] == (f"error: cannot write the embedding cache folder '{ro}': permission denied; "
                                      "choose another embedding cache folder in Settings > Options > AI Segmentation")
    assert result["cache segment"] == "ok"  # on a temporary cache, with a warning
    assert os.listdir(ro) == [] and not (tmp_path / "o1.gpkg").exists() and (tmp_path / "o2.gpkg").is_file()
