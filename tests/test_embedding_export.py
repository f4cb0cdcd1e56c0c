"""Embedding export: band values and georeferencing against the cache, PCA, float16, seams at a crop
boundary, destination checks, cancel, and the Processing algorithm."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from family_models import FAMILY_FILES, family_params
from osgeo import gdal, osr
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback, QgsSettings
from similar_scene import GT, H, W, scene, square_wkb, to_map, write_raster

from core.embeddings.embedding_export import (
    EmbeddingExportError,
    ExportCancelledError,
    Pca,
    check_output_path,
    export_embeddings,
)
from core.embeddings.features import CellGrid, image_features, raster_bounds
from core.embeddings.similarity import Example, SimilarSearch
from core.families.base import ImageEmbedding
from core.raster.crops import CropSpec
from core.raster.raster_source import RasterSource
from core.segment.embedding_cache import EmbeddingCache
from core.segment.segmenter import RasterSegmenter
from tools.plugin_package import plugin_module

FIXTURES = Path(__file__).parent / "fixtures"
COLOUR = FIXTURES / "colour.encoder.onnx"
DECODER = FIXTURES / "tiny.decoder.onnx"
LEFT, RIGHT = CropSpec(0, 0, 1024, 900), CropSpec(276, 0, 1024, 900)  # the raster's two crops


@pytest.fixture(scope="module")
def raster(tmp_path_factory) -> str:
    return write_raster(str(tmp_path_factory.mktemp("export") / "panels.tif"), scene())


@pytest.fixture(scope="module")
def segmenter(raster, tmp_path_factory) -> RasterSegmenter:
    seg = RasterSegmenter(RasterSource.open(raster), str(COLOUR), str(DECODER),
                          EmbeddingCache(str(tmp_path_factory.mktemp("cache"))))
    for crop in seg.crops_in_extent():
        seg.encode(crop)
    return seg


def _export(seg: RasterSegmenter, path: Path, extent=None, **kw):
    crops = seg.crops_in_extent(extent)
    src = seg.source

    def features(crop):
        return image_features(seg.embedding(crop))

    grid = CellGrid.of(crops[0], features(crops[0]), src.width, src.height)
    window = grid.window(raster_bounds(src.width, src.height, src.geotransform, extent))
    return export_embeddings(str(path), crops, features, grid, window, src.geotransform, src.crs_wkt, **kw)


def _read(path) -> tuple:
    ds = gdal.Open(str(path))
    out = (ds.ReadAsArray(), ds.GetGeoTransform(), ds.GetProjection(),
           [ds.GetRasterBand(b + 1).GetDescription() for b in range(ds.RasterCount)],
           ds.GetRasterBand(1).GetNoDataValue(), ds.GetMetadata())
    del ds
    return out


def _bilinear(values: np.ndarray, u: float) -> np.ndarray:
    """Column position ``u`` (cell centres at integers, held at the first centre before it) of
    ``[C, rows, cols]``."""
    u = max(u, 0.0)
    i0 = int(np.floor(u))
    return (1 - (u - i0)) * values[:, :, i0] + (u - i0) * values[:, :, i0 + 1]


def test_all_channels_match_the_cache(segmenter, tmp_path):
    result = _export(segmenter, tmp_path / "all.tif", components=0)
    data, gt, wkt, names, nodata, _ = _read(result.path)
    assert result.bands == 256 and data.shape == (256, 57, 82) and result.size == (82, 57)
    assert gt == pytest.approx((GT[0], 16 * GT[1], 0.0, GT[3], 0.0, 16 * GT[5]))  # one cell per 16 px
    srs = osr.SpatialReference(wkt)
    assert srs.GetAuthorityCode(None) == "32633"
    assert np.isnan(nodata) and names[0] == "embedding channel 0"
    left = image_features(segmenter.embedding(LEFT)).values  # [256, 57, 64]
    right = image_features(segmenter.embedding(RIGHT)).values
    # Columns 0-16 (pixels < 276): the left crop alone, whose cells are the raster's: its values exactly.
    np.testing.assert_array_equal(data[:, :56, :17], left[:, :56, :17])
    # Columns 64-80 (pixels >= 1024): the right crop alone, 17.25 cells off: bilinear between its cells.
    for j in range(64, 81):
        np.testing.assert_allclose(data[:, :56, j], _bilinear(right, j - 17.25)[:, :56], atol=1e-5)
    # In the overlap, a weighted mean of the two: between them, channel by channel.
    both = data[:, :56, 17:64]
    a, b = left[:, :56, 17:64], np.stack([_bilinear(right, j - 17.25)[:, :56] for j in range(17, 64)], -1)
    assert (both >= np.minimum(a, b) - 1e-5).all() and (both <= np.maximum(a, b) + 1e-5).all()
    # The last row and column of cells have their centre off the raster (900 and 1300 px): nodata.
    assert np.isnan(data[:, 56]).all() and np.isnan(data[:, :, 81]).all()
    assert not np.isnan(data[:, :56, :81]).any()
    # Half floats: the float32 values rounded to nearest.
    half = _export(segmenter, tmp_path / "half.tif", components=0, float16=True)
    h, gt16, *_ = _read(half.path)
    assert gt16 == gt
    np.testing.assert_array_equal(h, data.astype(np.float16).astype(np.float32))
    ds = gdal.Open(half.path)
    band = ds.GetRasterBand(1)  # half floats: NBITS=16 of Float32 before GDAL 3.11, its own Float16 type since
    assert band.GetMetadataItem("NBITS", "IMAGE_STRUCTURE") == "16" or band.DataType == getattr(gdal, "GDT_Float16", -1)
    assert os.path.getsize(half.path) < os.path.getsize(result.path)
    del ds
    assert sorted(os.listdir(tmp_path)) == ["all.tif", "half.tif"]  # no temporary file left


@pytest.mark.parametrize("family", [f for f in family_params() if f != "sam"])
def test_each_family_maps_its_own_cells(family, raster, tmp_path):
    """SAM 2.1 and EfficientSAM stretch a 1024 x 900 crop to 1024 x 1024: their cells are 16 x 14.06 px,
    and the export and the similarity map follow that grid."""
    files = FAMILY_FILES[family]
    seg = RasterSegmenter(RasterSource.open(raster), str(files["encoder"][0]), str(files["decoder"][0]),
                          EmbeddingCache(str(tmp_path / "cache")))
    for crop in seg.crops_in_extent():
        seg.encode(crop)
    assert seg.embedding(LEFT).family == family
    result = _export(seg, tmp_path / "all.tif", components=0)
    data, gt, *_ = _read(result.path)
    cell_h = 900 / 64
    assert gt == pytest.approx((GT[0], 16 * GT[1], 0.0, GT[3], 0.0, cell_h * GT[5]))
    assert data.shape == (256, 64, 82)  # 900 px = 64 cells of 14.06 px: no partial row
    left = image_features(seg.embedding(LEFT)).values
    np.testing.assert_array_equal(data[:, :, :17], left[:, :, :17])
    search = SimilarSearch(seg, [Example(1, square_wkb(100, 100))], None)
    best = search.score().best
    sig = search.signatures[0].vector
    cos = np.einsum("c,crw->rw", sig, left[:, :, :17]) / np.linalg.norm(left[:, :, :17], axis=0)
    np.testing.assert_allclose(best[:, :17], cos, atol=1e-5)


def test_principal_components(segmenter, tmp_path):
    first = _export(segmenter, tmp_path / "pca.tif", components=3)
    again = _export(segmenter, tmp_path / "pca2.tif", components=3)
    data, _, _, names, _, _ = _read(first.path)
    assert data.shape == (3, 57, 82) and first.bands == 3
    np.testing.assert_array_equal(data, _read(again.path)[0])  # deterministic
    assert list(first.explained) == sorted(first.explained, reverse=True) and sum(first.explained) <= 1.0
    assert names[0] == f"PC1 ({100 * first.explained[0]:.1f} % of variance)"
    # Blending is linear: the components of the stitched 256 channels are the stitched components.
    full = _read(_export(segmenter, tmp_path / "all.tif", components=0).path)[0]
    valid = ~np.isnan(full[0])
    flat = full[:, valid]
    pcs = data[:, valid]
    fitted = np.linalg.lstsq(np.c_[flat.T, np.ones(flat.shape[1])], pcs.T, rcond=None)
    residual = pcs.T - np.c_[flat.T, np.ones(flat.shape[1])] @ fitted[0]
    assert np.abs(residual).max() < 1e-3 * np.abs(pcs).max()
    # Uncorrelated components, in decreasing variance over the extent.
    var = pcs.var(axis=1)
    assert var[0] > var[1] > var[2] > 0
    corr = np.corrcoef(pcs)
    assert np.abs(corr[np.triu_indices(3, 1)]).max() < 0.1


def test_pca_fit_is_exact():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    samples = (rng.normal(size=(5000, 8)) * [10, 5, 2, 1, 0.1, 0.1, 0.1, 0.1]) @ basis.T + 3.0
    pca = Pca.fit(samples, 3)
    for k in range(3):  # the generating directions, each with its largest loading positive
        v = basis[:, k] * np.sign(basis[np.abs(basis[:, k]).argmax(), k])
        np.testing.assert_allclose(pca.components[k], v, atol=0.02)
    assert pca.explained[0] == pytest.approx(100 / 130.04, abs=0.02)
    proj = pca.project(samples.T.reshape(8, 50, 100).astype(np.float32))
    assert proj.shape == (3, 50, 100) and abs(proj.mean()) < 0.1


def test_no_seam_across_a_crop_boundary(segmenter, tmp_path):
    """Two crops that disagree, more and more towards their own edges (as encoders do where they see
    no context beyond): the export fades from one to the other, while switching crop at the middle
    of the overlap would step by their whole disagreement there."""
    src = segmenter.source
    cache = EmbeddingCache(str(tmp_path / "cache"))
    seg = RasterSegmenter(src, str(COLOUR), str(DECODER), cache)
    phase = np.arange(256)[:, None, None]

    def field(crop: CropSpec, error) -> np.ndarray:
        x = crop.col0 + (np.arange(64) + 0.5) * 16  # cell centres, source pixels
        out = np.sin(x[None, None, :] / 300.0 + phase) + error(x)[None, None, :]
        return np.broadcast_to(out, (256, 64, 64)).astype(np.float32)[None]

    errors = {LEFT: lambda x: 0.5 * (x / 1024) ** 4, RIGHT: lambda x: -0.5 * ((1300 - x) / 1024) ** 4}
    for crop, error in errors.items():
        cache.put(seg._key(crop), ImageEmbedding(field(crop, error), (900, 1024), (900, 1024)), {})
    data = _read(_export(seg, tmp_path / "seam.tif", components=0).path)[0][:, :56, :81]
    x = (np.arange(81) + 0.5) * 16  # the export's cell centres, source pixels
    truth = np.sin(x[None, None, :] / 300.0 + phase)
    excess = (np.abs(np.diff(data, axis=2)) - np.abs(np.diff(truth, axis=2))).max(axis=(0, 1))
    # A hard switch from one crop to the other mid-overlap (column 40, 648 px) steps by their
    # whole disagreement there; the export's steps exceed the field's own by a fraction of it.
    switch = truth + np.where(x < 656, errors[LEFT](x), errors[RIGHT](x))[None, None, :]
    switch_excess = (np.abs(np.diff(switch, axis=2)) - np.abs(np.diff(truth, axis=2))).max(axis=(0, 1))
    jump = 0.5 * (648 / 1024) ** 4 + 0.5 * ((1300 - 664) / 1024) ** 4
    assert switch_excess.max() == pytest.approx(jump, rel=0.05)
    assert excess.max() < 0.15 * jump
    # Mid-overlap, over RAMP_PX from both crops' edges, both count fully: the plain mean.
    mean_error = (errors[LEFT](x[40]) + errors[RIGHT](x[40])) / 2
    np.testing.assert_allclose(data[:, 0, 40], truth[:, 0, 40] + mean_error, atol=1e-3)


def test_sub_extent_and_destination_checks(segmenter, tmp_path):
    (x0, y1), (x1, y0) = to_map(1030, 100), to_map(1290, 500)
    sub = _export(segmenter, tmp_path / "sub.tif", extent=(x0, y0, x1, y1), components=0)
    data, gt, *_ = _read(sub.path)
    whole = _read(_export(segmenter, tmp_path / "whole.tif", components=0).path)[0]
    assert gt == pytest.approx((GT[0] + 64 * 8.0, 8.0, 0.0, GT[3] - 6 * 8.0, 0.0, -8.0))  # cells 64.., 6..
    np.testing.assert_allclose(data, whole[:, 6:32, 64:81], atol=1e-6)  # rows 6-31, columns 64-80
    with pytest.raises(EmbeddingExportError, match="does not exist"):
        check_output_path(str(tmp_path / "missing" / "out.tif"))
    with pytest.raises(EmbeddingExportError, match=r"end it with \.tif"):
        check_output_path(str(tmp_path / "out.png"))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not os.access(ro, os.W_OK):  # root may write anyway
            with pytest.raises(EmbeddingExportError, match="permission denied"):
                check_output_path(str(ro / "out.tif"))
    finally:
        ro.chmod(0o700)
    calls = []
    with pytest.raises(ExportCancelledError):
        _export(segmenter, tmp_path / "cancelled.tif", components=3,
                is_canceled=lambda: calls.append(1) or len(calls) > 1)
    assert not (tmp_path / "cancelled.tif").exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


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
    settings, key = QgsSettings(), "ai_segmentation/cache_dir"
    old = settings.value(key, None)
    settings.setValue(key, str(tmp_path / "cache"))
    yield tmp_path / "cache"
    if old is None:
        settings.remove(key)
    else:
        settings.setValue(key, old)


def _run(params: dict, feedback=None) -> dict:
    import processing

    return processing.run("aisegmentation:export_embeddings", params, feedback=feedback)


def test_export_algorithm(provider, raster, segmenter, cache_dir, tmp_path):
    assert (W, H) == (1300, 900)
    with pytest.raises(QgsProcessingException, match="does not exist"):
        _run({"INPUT": raster, "ENCODER": str(COLOUR), "OUTPUT": str(tmp_path / "no" / "e.tif")})
    assert not cache_dir.exists()  # checked before any encoding
    out = tmp_path / "pcs.tif"
    result = _run({"INPUT": raster, "ENCODER": str(COLOUR), "OUTPUT": str(out)})
    assert result["OUTPUT"] == str(out)
    assert len(list((cache_dir / "embeddings").rglob("*.npy"))) == 2  # both crops encoded first
    data, _, _, _, _, meta = _read(out)
    want = _read(_export(segmenter, tmp_path / "direct.tif", components=3).path)[0]
    np.testing.assert_allclose(data, want, atol=1e-5)  # same cache keys, same features, same file
    assert meta["AISEG_ENCODER"] == "colour.encoder.onnx" and meta["AISEG_SOURCE"] == "panels"
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda v: feedback.cancel() if v > 50 else None)
    with pytest.raises(QgsProcessingException, match="Canceled"):
        _run({"INPUT": raster, "ENCODER": str(COLOUR), "COMPONENTS": 0, "FLOAT16": True,
              "OUTPUT": str(tmp_path / "c.tif")}, feedback)
    assert not (tmp_path / "c.tif").exists()
