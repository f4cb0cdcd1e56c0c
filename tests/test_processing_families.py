"""The Processing algorithms with every model family (SAM 2.1, EfficientSAM): the same checks as
test_processing's SAM ones, on each family's tiny models."""

from __future__ import annotations

import pytest
from family_models import FAMILY_FILES, family_params
from test_processing import (  # noqa: F401  (fixtures used by name)
    OBJECTS,
    _direct,
    _features,
    _prompt_in_raster_crs,
    _run,
    _write_prompts,
    cache_dir,
    provider,
    raster,
    to_map,
)

FAMILIES = [f for f in family_params() if f != "sam"]


@pytest.fixture(params=FAMILIES)
def models(request):
    files = FAMILY_FILES[request.param]
    paths = {"encoder_preproc": files["encoder"][0], "decoder": files["decoder"][0]}
    return {"ENCODER": str(paths["encoder_preproc"]), "DECODER": str(paths["decoder"])}, paths


def test_segment_prompts_equals_clicking(provider, raster, cache_dir, models, tmp_path):  # noqa: F811
    params, paths = models
    out = str(tmp_path / "out.gpkg")
    result = _run("segment_prompts", {"INPUT": raster, "PROMPTS": _write_prompts(tmp_path / "p.gpkg", "points"),
                                      "GROUP_FIELD": "obj", "OUTPUT": out, **params})
    rows, crs = _features(result["OUTPUT"])
    assert crs == "EPSG:32633" and len(rows) == len(OBJECTS)
    for (attrs, geometry), (group, points, _) in zip(rows, OBJECTS):
        prompt = _prompt_in_raster_crs(points, None)
        want, score, _ = _direct(raster, cache_dir, paths, prompt, prompt.labels == (1,))
        assert geometry.symDifference(want).area() < 1e-6, group
        assert abs(attrs["score"] - score) < 1e-6 and attrs["model"] == paths["encoder_preproc"].name


def test_encode_then_segment_everything(provider, raster, cache_dir, models, tmp_path):  # noqa: F811
    params, _ = models
    assert _run("encode", {"INPUT": raster, "ENCODER": params["ENCODER"]})["ENCODED"] == 3  # 2 grid, 1 support
    box = (300, 100, 1000, 800)
    (x0, y1), (x1, y0) = to_map(box[0], box[1]), to_map(box[2], box[3])
    result = _run("segment_everything", {
        "INPUT": raster, "EXTENT": f"{x0},{x1},{y0},{y1} [EPSG:32633]", "POINTS_PER_SIDE": 4,
        "PRED_IOU_THRESH": 0.0, "STABILITY_SCORE_THRESH": 0.0, "OUTPUT": str(tmp_path / "all.gpkg"), **params})
    rows, _ = _features(result["OUTPUT"])
    assert rows
    for _, geometry in rows:
        bbox = geometry.boundingBox()
        assert x0 - 1e-6 <= bbox.xMinimum() and bbox.xMaximum() <= x1 + 1e-6 and geometry.isGeosValid()
