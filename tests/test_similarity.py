"""Find similar: signatures, stitched cosine maps, peaks, the peaks-to-polygons step and the
Processing algorithm, on a raster of repeated objects encoded by the synthetic colour encoder
(tests/fixtures/colour.encoder.onnx: embeddings that encode the local colour pattern)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from qgis.core import (
    QgsApplication,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProject,
    QgsSettings,
    QgsVectorLayer,
)
from similar_scene import DISTRACTORS, GT, SIZE, TARGETS, centre, scene, square_wkb, square_wkt, write_raster

from core.embeddings.features import CellGrid, image_features
from core.embeddings.similarity import (
    Example,
    Peak,
    SimilarityError,
    SimilarParams,
    SimilarSearch,
    choose_mask,
    find_peaks,
    segment_peaks,
)
from core.families.grid import embedding_grid
from core.raster.crops import CropSpec
from core.raster.raster_source import RasterSource
from core.segment.embedding_cache import EmbeddingCache
from core.segment.segmenter import RasterSegmenter, Segmentation
from tools.plugin_package import plugin_module

FIXTURES = Path(__file__).parent / "fixtures"
COLOUR = FIXTURES / "colour.encoder.onnx"
DECODER = FIXTURES / "tiny.decoder.onnx"
THRESHOLD = 0.9  # targets score about 0.96 over their footprint, the closest distractor (blue) 0.82


@pytest.fixture(scope="module")
def raster(tmp_path_factory) -> str:
    return write_raster(str(tmp_path_factory.mktemp("similar") / "panels.tif"), scene())


@pytest.fixture(scope="module")
def segmenter(raster, tmp_path_factory) -> RasterSegmenter:
    """Colour encoder, tiny decoder, both crops of the raster encoded."""
    seg = RasterSegmenter(RasterSource.open(raster), str(COLOUR), str(DECODER),
                          EmbeddingCache(str(tmp_path_factory.mktemp("cache"))))
    for crop in seg.crops_in_extent():
        seg.encode(crop)
    return seg


def _near(peak: Peak, point, tol: float = 12.0) -> bool:
    return math.hypot(peak.col - point[0], peak.row - point[1]) <= tol


def test_embedding_grid_maps_cells_to_crop_pixels():
    assert embedding_grid((900, 1024), (900, 1024)) == (57, 64, 16.0, 16.0)  # SAM, a full-width crop
    assert embedding_grid((600, 800), (768, 1024)) == (48, 64, 12.5, 12.5)  # SAM resizes the longest side
    assert embedding_grid((900, 1024), (1024, 1024)) == (64, 64, 900 / 64, 16.0)  # SAM 2.1: stretched


def test_finds_the_five_and_no_distractor(segmenter):
    example = Example(7, square_wkb(*TARGETS[0]), "panel")
    search = SimilarSearch(segmenter, [example], None, SimilarParams(THRESHOLD))
    scores = search.score()
    peaks = search.peaks(scores)
    others = [centre(t) for t in TARGETS[1:]]
    assert len(peaks) == 5
    assert sorted(min(range(5), key=lambda i: math.hypot(p.col - others[i][0], p.row - others[i][1]))
                  for p in peaks) == [0, 1, 2, 3, 4]
    assert all(any(_near(p, o) for p in peaks) for o in others)  # each target once, at its centre
    assert all(p.similarity >= THRESHOLD and p.example == 0 for p in peaks)
    assert [p.similarity for p in peaks] == sorted((p.similarity for p in peaks), reverse=True)
    # The distractors are real: with a low threshold the closest ones come out too, after the targets.
    found = find_peaks(scores, search.signatures, 0.5, 100, GT)
    assert any(_near(p, centre(DISTRACTORS["blue"])) for p in found[5:])
    assert all(not _near(p, centre(TARGETS[0]), SIZE) for p in found)  # never the example itself
    # The raw per-cell map: high inside every target, low on the ground.
    best = scores.best
    for c, r in TARGETS:
        assert best[int((r + 32) // 16), int((c + 32) // 16)] > 0.95
    assert np.nanmedian(best) < 0.5


def test_several_examples_and_an_extent(segmenter):
    """Each place is attributed to the example it resembles most; the extent limits the search."""
    red, blue = Example(11, square_wkb(*TARGETS[0])), Example(22, square_wkb(*DISTRACTORS["blue"]))
    search = SimilarSearch(segmenter, [red, blue], None, SimilarParams(THRESHOLD))
    peaks = search.peaks(search.score())
    assert len(peaks) == 6
    blue2 = [p for p in peaks if _near(p, centre(DISTRACTORS["blue2"]))]
    assert len(blue2) == 1 and blue2[0].example == 1
    assert sum(p.example == 0 for p in peaks) == 5
    # Only the right part of the raster (the example lies outside: its crop is still used).
    x0, y0 = GT[0] + 1030 * GT[1], GT[3] + 900 * GT[5]
    x1, y1 = GT[0] + 1300 * GT[1], GT[3]
    right = SimilarSearch(segmenter, [red], (x0, y0, x1, y1), SimilarParams(THRESHOLD))
    assert right.extent_crops == [CropSpec(276, 0, 1024, 900)]
    assert CropSpec(0, 0, 1024, 900) in right.crops
    inside = right.peaks(right.score())
    assert len(inside) == 1 and _near(inside[0], centre(TARGETS[4]))


def test_signature_is_the_mean_under_the_mask(segmenter):
    """Computed here from the cache: cells at least half covered by the square, weighted by coverage."""
    col, row = TARGETS[1]  # crop (0, 0) holds it with the largest margin
    search = SimilarSearch(segmenter, [Example(1, square_wkb(col, row))], None)
    search.score()
    sig = search.signatures[0]
    feats = image_features(segmenter.embedding(CropSpec(0, 0, 1024, 900))).values

    def cover(start: float, n: int) -> np.ndarray:
        cells = np.arange(n) * 16.0
        return np.clip(np.minimum(cells + 16, start + SIZE) - np.maximum(cells, start), 0, 16) / 16

    w = cover(row, feats.shape[1])[:, None] * cover(col, feats.shape[2])[None, :]
    w[w < 0.5] = 0
    mean = np.tensordot(feats, w, axes=([1, 2], [0, 1])) / w.sum()
    np.testing.assert_allclose(sig.vector, mean / np.linalg.norm(mean), atol=1e-5)
    assert sig.cells == pytest.approx(w.sum())
    assert sig.size_px == pytest.approx((SIZE, SIZE)) and sig.area_px == pytest.approx(SIZE * SIZE)
    with pytest.raises(SimilarityError, match="outside the raster"):
        SimilarSearch(segmenter, [Example(2, square_wkb(-500, -500))], None)
    with pytest.raises(SimilarityError, match="no example"):
        SimilarSearch(segmenter, [], None)


def _true_masks(segmenter: RasterSegmenter):
    """A segment function that knows the answer (no trained SAM runs here): three candidates at each
    target (a quarter of it, the square itself, twice its size) with the biggest scoring best."""
    src = segmenter.source
    calls = []

    def segment(xy):
        calls.append(xy)
        col, row = (xy[0] - GT[0]) / GT[1], (xy[1] - GT[3]) / GT[5]
        c, r = min(TARGETS, key=lambda t: math.hypot(col - centre(t)[0], row - centre(t)[1]))
        crop = CropSpec(0 if c < 600 else 276, 0, 1024, 900)
        c -= crop.col0
        masks = np.zeros((3, crop.height, crop.width), bool)
        masks[0, r : r + 32, c : c + 32] = True
        masks[1, r : r + SIZE, c : c + SIZE] = True
        masks[2, r - 16 : r + SIZE + 16, c - 16 : c + SIZE + 16] = True
        return Segmentation(masks, np.array([0.5, 0.6, 0.9], np.float32), np.zeros((3, 256, 256), np.float32),
                            crop.geotransform(src.geotransform), src.crs_wkt, crop)

    return segment, calls


def test_peaks_to_polygons(segmenter):
    example = Example(5, square_wkb(*TARGETS[0]), "panel")
    search = SimilarSearch(segmenter, [example], None, SimilarParams(THRESHOLD))
    peaks = search.peaks(search.score())
    twice = [*peaks[:3], Peak(peaks[0].col + 10, peaks[0].row, peaks[0].similarity - 0.01, 0)]  # same object
    segment, calls = _true_masks(segmenter)
    found = segment_peaks(twice, search.signatures, segment, GT)
    assert len(calls) == 4 and len(found) == 3  # the duplicate was segmented, then dropped
    for obj, peak in zip(found, peaks):
        assert obj.example is example and obj.similarity == peak.similarity and obj.score == pytest.approx(0.6)
        c, r = min(TARGETS, key=lambda t: math.hypot(peak.col - centre(t)[0], peak.row - centre(t)[1]))
        geometry = ogr.CreateGeometryFromWkb(obj.wkb)
        want = ogr.CreateGeometryFromWkt(square_wkt(c, r))
        assert geometry.SymDifference(want).GetArea() < 1e-6  # the example's size won over the best score


def test_choose_mask():
    masks = np.zeros((3, 10, 10), bool)
    masks[0, :2, :2] = True  # 4 px
    masks[1, :5, :5] = True  # 25 px
    scores = np.array([0.9, 0.1, 0.8])
    assert choose_mask(masks, scores, 1, 30.0) == 1
    assert choose_mask(masks, scores, 2, 30.0) == 0  # 16 source px at scale 2 is closer than 100
    assert choose_mask(masks[2:], scores[2:], 1, 30.0) is None  # nothing but an empty mask


# --- the Processing algorithm ---


@pytest.fixture(scope="module")
def provider(qgis_processing):
    registry = QgsApplication.processingRegistry()
    prov = plugin_module("processing_provider.provider").AISegmentationProvider()
    assert registry.addProvider(prov)
    yield prov
    registry.removeProvider(prov)


@pytest.fixture
def cache_dir(tmp_path):
    """The plugin's embedding cache setting, pointed at a fresh folder."""
    settings, key = QgsSettings(), "ai_segmentation/cache_dir"
    old = settings.value(key, None)
    settings.setValue(key, str(tmp_path / "cache"))
    yield tmp_path / "cache"
    if old is None:
        settings.remove(key)
    else:
        settings.setValue(key, old)


def _examples(path: Path, squares) -> str:
    """A GeoPackage polygon layer of ``(label, (col, row))`` squares, in the raster CRS."""
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    layer = ds.CreateLayer("examples", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTString))
    for label, (c, r) in squares:
        f = ogr.Feature(layer.GetLayerDefn())
        f.SetField("label", label)
        f.SetGeometry(ogr.CreateGeometryFromWkt(square_wkt(c, r)))
        layer.CreateFeature(f)
    del layer, ds
    return f"{path}|layername=examples"


def _run(alg: str, params: dict, feedback=None) -> dict:
    import processing

    return processing.run(f"aisegmentation:{alg}", params, feedback=feedback)


def test_find_similar_algorithm(provider, raster, cache_dir, tmp_path):
    layer = QgsVectorLayer(_examples(tmp_path / "ex.gpkg", [("panel", TARGETS[0]), ("blue", DISTRACTORS["blue"])]),
                           "examples", "ogr")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    try:
        red_fid = next(f.id() for f in layer.getFeatures() if f["label"] == "panel")
        layer.selectByIds([red_fid])
        heat = tmp_path / "heat.tif"
        result = _run("find_similar", {
            "INPUT": raster, "EXAMPLES": QgsProcessingFeatureSourceDefinition(layer.id(), selectedFeaturesOnly=True),
            "THRESHOLD": THRESHOLD, "MAX_OBJECTS": 20, "ENCODER": str(COLOUR), "DECODER": str(DECODER),
            "OUTPUT": str(tmp_path / "found.gpkg"), "HEATMAP": str(heat)})
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
    assert result["PEAKS"] == 5  # the blue example was not selected: blue2 is not found
    out = QgsVectorLayer(result["OUTPUT"], "found", "ogr")
    rows = [(dict(zip(out.fields().names(), f.attributes())), QgsGeometry(f.geometry())) for f in out.getFeatures()]
    assert out.crs().authid() == "EPSG:32633" and len(rows) == result["FOUND"] >= 1
    for attrs, geometry in rows:  # random-weight masks are meaningless: the attributes are not
        assert attrs["similarity"] >= THRESHOLD and attrs["source_id"] == red_fid and attrs["label"] == "panel"
        assert attrs["n_positive"] == 1 and attrs["model"] == "colour.encoder.onnx" and geometry.isGeosValid()
        assert attrs["area_m2"] == pytest.approx(geometry.area())
    del out
    # The heat map is the search's raw similarity, georeferenced on the 16 px cells.
    seg = RasterSegmenter(RasterSource.open(raster), str(COLOUR), str(DECODER), EmbeddingCache(str(cache_dir)))
    search = SimilarSearch(seg, [Example(red_fid, square_wkb(*TARGETS[0]))], None)
    want = search.score().best
    ds = gdal.Open(str(heat))
    assert ds.GetGeoTransform() == pytest.approx((GT[0], 8.0, 0.0, GT[3], 0.0, -8.0))
    got = ds.GetRasterBand(1).ReadAsArray()
    assert np.isnan(ds.GetRasterBand(1).GetNoDataValue())
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.isnan(got[-1]).all() and np.isnan(got[:, -1]).all()  # cells whose centre is off the raster
    grid = CellGrid.of(seg.crops_in_extent()[0], search.features(seg.crops_in_extent()[0]), seg.source.width,
                       seg.source.height)
    assert (ds.RasterXSize, ds.RasterYSize) == (grid.cols, grid.rows) == (82, 57)
    del ds


def test_find_similar_checks_before_work(provider, raster, cache_dir, tmp_path):
    examples = _examples(tmp_path / "ex.gpkg", [("panel", TARGETS[0])])
    models = {"ENCODER": str(COLOUR), "DECODER": str(DECODER)}
    with pytest.raises(QgsProcessingException, match=r"cannot write the output file '.*o\.gpkg': the folder '.*no' "
                                                     "does not exist"):
        _run("find_similar", {"INPUT": raster, "EXAMPLES": examples, "OUTPUT": str(tmp_path / "no" / "o.gpkg"),
                              **models})
    with pytest.raises(QgsProcessingException, match="is not a GeoTIFF name"):
        _run("find_similar", {"INPUT": raster, "EXAMPLES": examples, "OUTPUT": str(tmp_path / "o.gpkg"),
                              "HEATMAP": str(tmp_path / "heat.png"), **models})
    assert not cache_dir.exists()  # nothing was encoded
    empty = _examples(tmp_path / "empty.gpkg", [])
    with pytest.raises(QgsProcessingException, match="EXAMPLES holds no polygon"):
        _run("find_similar", {"INPUT": raster, "EXAMPLES": empty, "OUTPUT": str(tmp_path / "o.gpkg"), **models})
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda v: feedback.cancel() if v > 0 else None)
    with pytest.raises(QgsProcessingException, match="Canceled"):
        _run("find_similar", {"INPUT": raster, "EXAMPLES": examples, "OUTPUT": str(tmp_path / "o.gpkg"),
                              **models}, feedback)
    assert not (tmp_path / "o.gpkg").exists()
    assert len(list((cache_dir / "embeddings").rglob("*.npy"))) == 1  # cancelled after the first crop
