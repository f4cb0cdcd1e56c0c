"""The Processing provider with the tiny models: processing.run, the real qgis_process, cancelling."""

from __future__ import annotations

import itertools
import os
import site
import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsSettings,
    QgsVectorLayer,
)

from core.polygon_exporter import mask_to_polygons
from core.raster.raster_source import RasterSource
from core.segment.embedding_cache import EmbeddingCache
from core.segment.mask_ops import RefineParams
from core.segment.segmenter import MAX_RECENTRES, MapPrompt, NotEncodedError, RasterSegmenter
from tools.plugin_package import plugin_module

ROOT = Path(__file__).resolve().parents[1]
QGIS_PROCESS = "/usr/bin/qgis_process.bin"
UTM_GT = (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5)  # EPSG:32633, 0.5 m pixels
W, H = 1300, 900  # two encoder crops: columns 0-1024 and 276-1300
# Objects in raster pixels (col, row): (group, [(col, row, label)...], box or None)
OBJECTS = [
    ("a", [(300, 400, 1), (340, 430, 0)], None),
    ("b", [(1200, 120, 1)], None),
    ("c", [(650, 300, 1)], (600, 250, 720, 380)),
]




def to_map(col: float, row: float):
    return UTM_GT[0] + col * UTM_GT[1], UTM_GT[3] + row * UTM_GT[5]


def _transform(src: str, dst: str) -> QgsCoordinateTransform:
    """(Made after QGIS starts: a CRS built at import time is invalid.)"""
    return QgsCoordinateTransform(QgsCoordinateReferenceSystem(src), QgsCoordinateReferenceSystem(dst),
                                  QgsProject.instance())


def _to_wgs84(x: float, y: float):
    p = _transform("EPSG:32633", "EPSG:4326").transform(QgsPointXY(x, y))
    assert -180 < p.x() < 180 and -90 < p.y() < 90
    return p.x(), p.y()


@pytest.fixture(scope="module")
def provider(qgis_processing):
    registry = QgsApplication.processingRegistry()
    prov = plugin_module("processing_provider.provider").AISegmentationProvider()
    assert registry.addProvider(prov)
    yield prov
    registry.removeProvider(prov)


@pytest.fixture
def cache_dir(tmp_path):
    """The plugin's embedding cache, in a fresh folder (the setting the dock uses)."""
    settings, key = QgsSettings(), "ai_segmentation/cache_dir"
    old = settings.value(key, None)
    settings.setValue(key, str(tmp_path / "cache"))
    yield tmp_path / "cache"
    if old is None:
        settings.remove(key)
    else:
        settings.setValue(key, old)


@pytest.fixture
def raster(tmp_path) -> str:
    rng = np.random.default_rng(7)
    mem = gdal.GetDriverByName("MEM").Create("", W, H, 3, gdal.GDT_Byte)
    mem.SetGeoTransform(UTM_GT)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    mem.SetProjection(srs.ExportToWkt())
    yy, xx = np.mgrid[:H, :W]
    for i in range(3):
        band = rng.integers(0, 90, (H, W), dtype=np.uint8)
        band[np.hypot(xx - 320, yy - 410) < 60] = 230 - 40 * i
        mem.GetRasterBand(i + 1).WriteArray(band)
    path = str(tmp_path / "ortho.tif")
    out = gdal.GetDriverByName("GTiff").CreateCopy(path, mem)
    del out, mem
    return path


def _write_prompts(path: Path, kind: str) -> str:
    """A GeoPackage layer in EPSG:4326: the points (kind "points") or boxes ("boxes") of OBJECTS."""
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    layer = ds.CreateLayer(kind, srs, ogr.wkbPoint if kind == "points" else ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("obj", ogr.OFTString))
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTInteger))
    for group, points, box in OBJECTS:
        shapes = []
        if kind == "points":
            shapes = [(f"POINT({x} {y})", label) for x, y, label in
                      ((*_to_wgs84(*to_map(c, r)), lab) for c, r, lab in points)]
        elif box is not None:
            ring = [_to_wgs84(*to_map(c, r)) for c, r in ((box[0], box[1]), (box[2], box[1]), (box[2], box[3]),
                                                          (box[0], box[3]), (box[0], box[1]))]
            shapes = [("POLYGON((" + ",".join(f"{x} {y}" for x, y in ring) + "))", 1)]
        for wkt, label in shapes:
            f = ogr.Feature(layer.GetLayerDefn())
            f.SetField("obj", group)
            f.SetField("label", label)
            f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
            layer.CreateFeature(f)
    del layer, ds
    return f"{path}|layername={kind}"


def _features(path: str):
    """``[(attributes dict, QgsGeometry)]`` of a vector file, and its CRS authid; no layer kept alive."""
    layer = QgsVectorLayer(path, "out", "ogr")
    assert layer.isValid(), path
    names = layer.fields().names()
    rows = [(dict(zip(names, f.attributes())), QgsGeometry(f.geometry())) for f in layer.getFeatures()]
    crs = layer.crs().authid()
    del layer
    return rows, crs


def _direct(raster: str, cache: Path, tiny_paths, prompt: MapPrompt, multimask: bool):
    """What clicking does: RasterSegmenter, encoding missing crops, best mask, default refinement."""
    seg = RasterSegmenter(RasterSource.open(raster), tiny_paths["encoder_preproc"], tiny_paths["decoder"],
                          EmbeddingCache(str(cache)))
    while True:
        try:
            result = seg.segment(prompt, multimask=multimask)
            break
        except NotEncodedError as exc:
            seg.encode(exc.crop)
    s = result.crop.scale  # refinement sizes are source pixels, as the dock scales them
    refine = RefineParams(1.0 / s, 16 // s**2, 16 // s**2)
    poly = mask_to_polygons(result.masks[result.best], result.geotransform, result.crs_wkt, refine)
    g = QgsGeometry()
    g.fromWkb(poly.wkb)
    return g, float(result.scores[result.best]), result.crop


def _prompt_in_raster_crs(points, box) -> MapPrompt:
    """The 4326 prompt as the algorithm sees it: reprojected back to the raster CRS."""
    back = _transform("EPSG:4326", "EPSG:32633")

    def utm(c, r):
        p = back.transform(QgsPointXY(*_to_wgs84(*to_map(c, r))))
        return p.x(), p.y()

    pts = tuple(utm(c, r) for c, r, _ in points)
    map_box = None
    if box is not None:
        corners = [utm(c, r) for c, r in itertools.product((box[0], box[2]), (box[1], box[3]))]
        xs, ys = [p[0] for p in corners], [p[1] for p in corners]
        map_box = (min(xs), min(ys), max(xs), max(ys))
    return MapPrompt(pts, tuple(lab for _, _, lab in points), map_box)


def _run(alg: str, params: dict, feedback=None) -> dict:
    import processing

    return processing.run(f"aisegmentation:{alg}", params, feedback=feedback)


ALGORITHMS = ["aisegmentation:encode", "aisegmentation:export_coco", "aisegmentation:export_embeddings",
              "aisegmentation:find_similar", "aisegmentation:segment_everything",
              "aisegmentation:segment_prompts"]  # sorted


def _models(tiny_paths) -> dict:
    return {"ENCODER": str(tiny_paths["encoder_preproc"]), "DECODER": str(tiny_paths["decoder"])}


def test_provider_lists_the_algorithms(provider):
    assert provider.id() == "aisegmentation" and provider.name() == "AI Segmentation"
    assert sorted(a.id() for a in provider.algorithms()) == ALGORITHMS
    everything = QgsApplication.processingRegistry().algorithmById("aisegmentation:segment_everything")
    defaults = {p.name(): p.defaultValue() for p in everything.parameterDefinitions()}
    assert defaults["POINTS_PER_SIDE"] == 32 and defaults["POINTS_PER_BATCH"] == 64
    assert defaults["PRED_IOU_THRESH"] == 0.88 and defaults["STABILITY_SCORE_THRESH"] == 0.95
    assert defaults["BOX_NMS_THRESH"] == 0.7 and defaults["MIN_MASK_REGION_AREA"] == 0


def test_encode_fills_the_dock_cache(provider, raster, cache_dir, tiny_paths):
    models = {"ENCODER": str(tiny_paths["encoder_preproc"])}
    x0, y0 = to_map(10, 10)
    x1, y1 = to_map(200, 200)  # inside the first crop only
    # Counts include the coarser support crop (one at scale 2 for 1300 x 900 px), as the dock's Encode Image.
    first = _run("encode", {"INPUT": raster, "EXTENT": f"{x0},{x1},{y1},{y0} [EPSG:32633]", **models})
    assert (first["ENCODED"], first["CACHED"], first["SUPPORT"]) == (2, 0, 1)
    whole = _run("encode", {"INPUT": raster, **models})
    assert (whole["ENCODED"], whole["CACHED"], whole["SUPPORT"]) == (1, 2, 1)
    again = _run("encode", {"INPUT": raster, **models})
    assert (again["ENCODED"], again["CACHED"], again["SUPPORT"]) == (0, 3, 1)
    # The dock's segmenter finds every crop cached.
    seg = RasterSegmenter(RasterSource.open(raster), tiny_paths["encoder_preproc"], tiny_paths["decoder"],
                          EmbeddingCache(str(cache_dir)))
    assert all(seg.is_encoded(c) for c in seg.crops_in_extent() + seg.crops_in_extent(support=True))


def test_after_encode_no_click_encodes(provider, raster, cache_dir, tiny_paths):
    """Each step of a click with refinement (the dock's step API, encodes allowed) finds its crop
    cached after aisegmentation:encode: refinements onto the support crop included."""
    feedback = QgsProcessingFeedback()
    infos = []
    feedback.pushInfo = infos.append
    _run("encode", {"INPUT": raster, "ENCODER": str(tiny_paths["encoder_preproc"])}, feedback)
    assert any("2 grid crops and 1 coarser support crop" in line for line in infos), infos
    seg = RasterSegmenter(RasterSource.open(raster), tiny_paths["encoder_preproc"], tiny_paths["decoder"],
                          EmbeddingCache(str(cache_dir)))
    support = seg.crops_in_extent(support=True)
    refined_on = []
    for col, row in itertools.product((40, 300, 650, 1000, 1260), (40, 410, 860)):
        prompt = MapPrompt(points=(to_map(col + 0.5, row + 0.5),), labels=(1,))
        step = seg.first_step(prompt)
        seen = {step.crop}
        for _ in range(MAX_RECENTRES + 1):
            assert seg.is_encoded(step.crop), f"a click at ({col}, {row}) would encode {step.crop.as_dict()}"
            step = seg.refinement(seg.decode_step(step, prompt), prompt, seen=seen, allow_encode=True)
            if step is None:
                break
            seen.add(step.crop)
            refined_on.append(step.crop)
    assert set(refined_on) & set(support)  # the tiny model's masks fill their crop: refined onto the support crop


@pytest.mark.parametrize("kind", ["points", "boxes"])
def test_segment_prompts_equals_clicking(provider, raster, cache_dir, tiny_paths, tmp_path, kind):
    prompts = _write_prompts(tmp_path / "prompts.gpkg", kind)
    out = str(tmp_path / "out.gpkg")
    params = {"INPUT": raster, "PROMPTS": prompts, "OUTPUT": out, **_models(tiny_paths)}
    if kind == "points":
        params["GROUP_FIELD"] = "obj"
    result = _run("segment_prompts", params)
    rows, crs = _features(result["OUTPUT"])
    assert crs == "EPSG:32633"
    expected = [o for o in OBJECTS if kind == "points" or o[2] is not None]
    assert len(rows) == len(expected)
    for (attrs, geometry), (group, points, box) in zip(rows, expected):
        if kind == "boxes":
            points = []
        else:
            box = None
        prompt = _prompt_in_raster_crs(points, box)
        multimask = prompt.box is None and prompt.labels == (1,)
        want, score, crop = _direct(raster, cache_dir, tiny_paths, prompt, multimask)
        assert geometry.wkbType() == want.wkbType()
        assert geometry.symDifference(want).area() < 1e-6, group
        assert abs(attrs["score"] - score) < 1e-6
        assert attrs["n_positive"] == sum(p[2] == 1 for p in points)
        assert attrs["n_negative"] == sum(p[2] == 0 for p in points)
        assert attrs["source"] == "ortho" and attrs["model"] == "tiny.encoder.preproc.onnx"
        assert abs(attrs["area_m2"] - geometry.area()) < 1e-6  # UTM metres
        if kind == "points":
            assert attrs["prompt_group"] == group and attrs["label"] == group
        # The polygon lies in the raster CRS, on the crop the prompt was decoded on.
        c0, r0, c1, r1 = crop.source_bounds
        (x0, y0), (x1, y1) = to_map(c0, r1), to_map(c1, r0)
        bbox = geometry.boundingBox()
        assert x0 - 1e-6 <= bbox.xMinimum() and bbox.xMaximum() <= x1 + 1e-6
        assert y0 - 1e-6 <= bbox.yMinimum() and bbox.yMaximum() <= y1 + 1e-6
        anchor = prompt.points[0] if prompt.points else prompt.box[:2]
        assert bbox.buffered(512 * 0.5).contains(QgsPointXY(*anchor))  # near the prompt, not elsewhere


def test_bad_prompts_get_clear_messages(provider, raster, cache_dir, tiny_paths, tmp_path):
    path = tmp_path / "bad.gpkg"
    prompts = _write_prompts(path, "points")
    far = str(tmp_path / "far_out.gpkg")
    with pytest.raises(QgsProcessingException, match="outside the raster"):
        _run("segment_prompts", {"INPUT": raster, "PROMPTS": _far_points(tmp_path / "far.gpkg"), "OUTPUT": far,
                                 **_models(tiny_paths)})
    assert not os.path.exists(far)
    layer = QgsVectorLayer(prompts, "p", "ogr")
    layer.startEditing()
    layer.changeAttributeValue(next(layer.getFeatures()).id(), layer.fields().indexOf("label"), 2)
    assert layer.commitChanges()
    del layer
    with pytest.raises(QgsProcessingException, match="use 1 \\(include\\) or 0 \\(exclude\\)"):
        _run("segment_prompts", {"INPUT": raster, "PROMPTS": prompts, "OUTPUT": str(tmp_path / "o.gpkg"),
                                 **_models(tiny_paths)})
    with pytest.raises(QgsProcessingException, match=r"SAM encoder file .*missing\.onnx.: it does not exist"):
        _run("segment_prompts", {"INPUT": raster, "PROMPTS": prompts, "OUTPUT": str(tmp_path / "o.gpkg"),
                                 "ENCODER": str(tmp_path / "missing.onnx"), "DECODER": str(tiny_paths["decoder"])})
    assert not os.path.exists(tmp_path / "o.gpkg")


def _far_points(path: Path) -> str:
    """One point 100 km off the raster, in its CRS."""
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    layer = ds.CreateLayer("far", srs, ogr.wkbPoint)
    f = ogr.Feature(layer.GetLayerDefn())
    f.SetGeometry(ogr.CreateGeometryFromWkt("POINT(400000 4900000)"))
    layer.CreateFeature(f)
    del layer, ds
    return str(path)


def _iou(a: QgsGeometry, b: QgsGeometry) -> float:
    inter = a.intersection(b).area()
    return inter / (a.area() + b.area() - inter)


def test_segment_everything_over_two_crops(provider, raster, cache_dir, tiny_paths, tmp_path):
    """The extent lies in the overlap of both crops: both decode (each its own grid points) and find
    the same large random-weight masks; each must come out once, inside the extent."""
    box = (300, 100, 1000, 800)  # pixels; the crops are columns 0-1024 and 276-1300
    (x0, y1), (x1, y0) = to_map(box[0], box[1]), to_map(box[2], box[3])
    out = str(tmp_path / "everything.gpkg")
    result = _run("segment_everything", {
        "INPUT": raster, "EXTENT": f"{x0},{x1},{y0},{y1} [EPSG:32633]", "POINTS_PER_SIDE": 6,
        "PRED_IOU_THRESH": 0.1, "STABILITY_SCORE_THRESH": 0.0, "OUTPUT": out, **_models(tiny_paths)})
    rows, crs = _features(result["OUTPUT"])
    assert crs == "EPSG:32633" and rows
    assert len(list((cache_dir / "embeddings").rglob("*.npy"))) == 2  # both crops were used
    for attrs, geometry in rows:
        bbox = geometry.boundingBox()
        assert x0 - 1e-6 <= bbox.xMinimum() and bbox.xMaximum() <= x1 + 1e-6
        assert y0 - 1e-6 <= bbox.yMinimum() and bbox.yMaximum() <= y1 + 1e-6
        assert geometry.isGeosValid() and attrs["score"] > 0.1 and attrs["stability"] == 0.0
        assert attrs["area_m2"] == pytest.approx(geometry.area())
    for (_, a), (_, b) in itertools.combinations(rows, 2):  # no object twice: boxes NMS'd across crops
        assert _iou(QgsGeometry.fromRect(a.boundingBox()), QgsGeometry.fromRect(b.boundingBox())) <= 0.7


def test_cancel_stops_promptly_and_writes_nothing(provider, raster, cache_dir, tiny_paths, tmp_path):
    out = tmp_path / "cancelled.gpkg"
    feedback = QgsProcessingFeedback()
    seen = []

    def on_progress(value: float) -> None:
        seen.append(value)
        if value > 0:
            feedback.cancel()

    feedback.progressChanged.connect(on_progress)
    with pytest.raises(QgsProcessingException):
        _run("segment_everything", {
            "INPUT": raster, "POINTS_PER_SIDE": 8, "POINTS_PER_BATCH": 4, "PRED_IOU_THRESH": 0.0,
            "STABILITY_SCORE_THRESH": 0.0, "OUTPUT": str(out), **_models(tiny_paths)}, feedback)
    assert not out.exists()
    # Cancelled after the first batch of 4 points (of about 64 per crop): nothing ran after that.
    assert len([v for v in seen if v > 0]) == 1 and max(seen) < 10
    assert len(list((cache_dir / "embeddings").rglob("*.npy"))) == 1  # the second crop was never encoded

    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda v: feedback.cancel() if v > 0 else None)
    prompts = _write_prompts(tmp_path / "prompts.gpkg", "points")
    with pytest.raises(QgsProcessingException):
        _run("segment_prompts", {"INPUT": raster, "PROMPTS": prompts, "GROUP_FIELD": "obj",
                                 "OUTPUT": str(out), **_models(tiny_paths)}, feedback)
    assert not out.exists()


@pytest.mark.skipif(not os.path.exists(QGIS_PROCESS), reason="qgis_process is not installed")
def test_qgis_process_gives_the_same_polygons(provider, raster, cache_dir, tiny_paths, tmp_path):
    prompts = _write_prompts(tmp_path / "prompts.gpkg", "points")
    args = [f"INPUT={raster}", f"PROMPTS={prompts}", "GROUP_FIELD=obj",
            f"ENCODER={tiny_paths['encoder_preproc']}", f"DECODER={tiny_paths['decoder']}"]
    ours = _run("segment_prompts", dict(a.split("=", 1) for a in args) | {"OUTPUT": str(tmp_path / "ours.gpkg")})

    profile = tmp_path / "profile"
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "ai_segmentation").symlink_to(ROOT, target_is_directory=True)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile),
               XDG_CACHE_HOME=str(tmp_path / "xdg"),  # its own, empty embedding cache
               PYTHONPATH=os.pathsep.join([*site.getsitepackages(), os.environ.get("PYTHONPATH", "")]))
    enable = subprocess.run([QGIS_PROCESS, "plugins", "enable", "ai_segmentation"], env=env,
                            capture_output=True, text=True, timeout=180)
    assert enable.returncode == 0, enable.stdout + enable.stderr
    out = tmp_path / "qgis_process.gpkg"
    run = subprocess.run([QGIS_PROCESS, "run", "aisegmentation:segment_prompts", "--", *args, f"OUTPUT={out}"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert out.is_file() and (tmp_path / "xdg" / "qgis-ai-segmentation").is_dir()
    theirs, crs = _features(str(out))
    mine, _ = _features(ours["OUTPUT"])
    assert crs == "EPSG:32633" and len(theirs) == len(mine) == len(OBJECTS)
    for (a, ga), (b, gb) in zip(theirs, mine):
        assert a["prompt_group"] == b["prompt_group"] and abs(a["score"] - b["score"]) < 1e-6
        assert ga.symDifference(gb).area() < 1e-6


def test_models_default_to_the_models_folder(provider, raster, cache_dir, tiny_paths, tmp_path):
    settings, key = QgsSettings(), "ai_segmentation/models_dir"
    old = settings.value(key, None)
    try:
        settings.setValue(key, str(tmp_path / "models"))
        (tmp_path / "models").mkdir()
        with pytest.raises(QgsProcessingException, match="No SAM encoder given and none found in"):
            _run("encode", {"INPUT": raster})
        for name in ("encoder_preproc", "decoder"):
            (tmp_path / "models" / tiny_paths[name].name).symlink_to(tiny_paths[name])
        assert _run("encode", {"INPUT": raster})["ENCODED"] == 3  # 2 grid crops and 1 support crop
        prompts = _write_prompts(tmp_path / "prompts.gpkg", "points")
        rows, _ = _features(_run("segment_prompts", {"INPUT": raster, "PROMPTS": prompts,
                                                     "OUTPUT": str(tmp_path / "o.gpkg")})["OUTPUT"])
        assert len(rows) == 4 and {a["model"] for a, _ in rows} == {"tiny.encoder.preproc.onnx"}
        assert [a["prompt_group"] for a, _ in rows] == [1, 2, 3, 4]  # no GROUP_FIELD: one object per feature
    finally:
        if old is None:
            settings.remove(key)
        else:
            settings.setValue(key, old)


def test_raster_without_georeferencing_is_measured_in_pixels(provider, cache_dir, tiny_paths, tmp_path):
    """A plain PNG is segmented in QGIS's pixel frame (x = column, y = -row): its objects get
    ``area_px`` / ``perimeter_px``, as the dock writes them, never metres."""
    from qgis.core import QgsFeature
    from test_segmenter import raster as make_raster

    png = make_raster(tmp_path / "plain.png", 400, 300, gt=None, driver="PNG",
                      fill=lambda xx, yy: (abs(xx - 200) < 60) & (abs(yy - 150) < 40))
    prompts = QgsVectorLayer("Point?field=label:integer", "clicks", "memory")  # no CRS, as the raster
    feature = QgsFeature(prompts.fields())
    feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(200.5, -150.5)))
    feature["label"] = 1
    assert prompts.dataProvider().addFeatures([feature])[0]
    out = str(tmp_path / "plain_objects.gpkg")
    result = _run("segment_prompts", {"INPUT": png, "PROMPTS": prompts, "OUTPUT": out, "SIMPLIFY": 0.0,
                                      "MIN_AREA": 0, **_models(tiny_paths)})
    rows, _ = _features(result["OUTPUT"])
    layer = QgsVectorLayer(result["OUTPUT"], "out", "ogr")
    names = layer.fields().names()
    del layer
    assert "area_px" in names and "perimeter_px" in names
    assert "area_m2" not in names and "perimeter_m" not in names
    ((attrs, geometry),) = rows
    bbox = geometry.boundingBox()
    assert bbox.xMinimum() >= 0 and bbox.xMaximum() <= 400 and bbox.yMinimum() >= -300 and bbox.yMaximum() <= 0
    assert attrs["area_px"] == pytest.approx(geometry.area()) and attrs["area_px"] > 0
    assert attrs["perimeter_px"] == pytest.approx(geometry.length())
    everything = _run("segment_everything", {"INPUT": png, "POINTS_PER_SIDE": 4, "PRED_IOU_THRESH": 0.0,
                                             "STABILITY_SCORE_THRESH": 0.0, "OUTPUT": str(tmp_path / "all.gpkg"),
                                             **_models(tiny_paths)})
    found, _ = _features(everything["OUTPUT"])
    assert found and all("area_px" in a and "area_m2" not in a for a, _ in found)
    assert all(a["area_px"] == pytest.approx(g.area()) for a, g in found)
