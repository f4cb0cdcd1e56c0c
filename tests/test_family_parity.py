"""SAM 2.1 and EfficientSAM engines vs their own reference predictors on the same tiny random weights.

Goldens: tests/fixtures/<family>/golden.npz and its README (the reference's pre- and
post-processing). The same prompt kinds as the SAM parity tests: a point, points with an exclude,
a box, a box plus a point, a refinement with the previous logits (families that take a mask
input), multimask on and off, at every size in ``sam_cases.FAMILY_SIZES``.
"""

from __future__ import annotations

import numpy as np
import pytest
from family_models import FAMILY_FILES, family_params
from sam_cases import FAMILY_SIZES, make_image, prompts, refine_prompt

from core.sam_decoder import SamDecoder
from core.sam_encoder import SamEncoder

FAMILIES = [f for f in family_params() if f != "sam"]
CASES = ["point", "three_points", "box", "box_point"]
FEATURES = {"sam2": {"image_embed": "image_embeddings", "high_res_feats_0": "high_res_feats_0",
                     "high_res_feats_1": "high_res_feats_1"},
            "efficientsam": {"image_embeddings": "image_embeddings"}}
REFINES = {"sam2": True, "efficientsam": False}  # EfficientSAM's decoder takes no mask input
FIGURES: dict = {}  # worst figures per family, printed at the end of the module (pytest -s)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@pytest.fixture(scope="module", autouse=True)
def _print_figures(request):
    yield
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for name, figures in FIGURES.items():
            print(f"\n{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in sorted(figures.items())))


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    name = request.param
    files = FAMILY_FILES[name]
    with np.load(files["golden"]) as g:
        golden = {k: g[k] for k in g.files}
    encoder, decoder = SamEncoder(files["encoder"][0]), SamDecoder(files["decoder"][0])
    bundles = {size: encoder.encode(make_image(*size)) for size in FAMILY_SIZES}
    return name, decoder, golden, bundles


def _note(name: str, what: str, value: float, worst=max) -> None:
    FIGURES.setdefault(name, {})
    FIGURES[name][what] = worst(FIGURES[name].get(what, value), value)


@pytest.mark.parametrize("size", FAMILY_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_features_match(family, size):
    name, _, golden, bundles = family
    bundle = bundles[size]
    key = f"{size[0]}x{size[1]}"
    assert bundle.family == name and bundle.original_size == size
    for graph_name, bundle_name in FEATURES[name].items():
        steps = golden.get(f"feature_steps/{graph_name}", golden.get("emb_steps"))
        c, y, x = (int(v) for v in steps)
        got = bundle.tensors[bundle_name][0, ::c, ::y, ::x]
        ref = golden[f"{key}/{graph_name}"]
        rel = float(np.abs(got - ref).max() / max(1.0, np.abs(ref).max()))
        _note(name, "features rel", rel)
        assert rel <= 1e-4, graph_name


def _check(name, pred, golden, key, multi, size):
    stride, mstride = int(golden["logit_stride"]), int(golden["mask_stride"])
    k = 3 if multi else 1
    assert pred.masks.shape == (k, *size) and pred.masks.dtype == bool
    assert pred.scores.shape == (k,) and pred.low_res_logits.shape == (k, 256, 256)
    diff = float(np.abs(pred.low_res_logits[:, ::stride, ::stride] - golden[f"{key}/logits"]).max())
    _note(name, f"logits {'1024' if size == (1024, 1024) else 'resized'}", diff)
    assert diff <= (1e-4 if size == (1024, 1024) else 1e-3)
    assert np.abs(pred.scores - golden[f"{key}/scores"]).max() <= 1e-4
    sub = pred.masks[:, ::mstride, ::mstride]
    ref = np.unpackbits(golden[f"{key}/masks"], axis=-1)[..., : sub.shape[-1]].astype(bool)
    for i in range(k):
        assert ref[i].any(), "degenerate golden mask"
        score = iou(sub[i], ref[i])
        _note(name, "mask IoU", score, min)
        assert score >= 0.99


@pytest.mark.parametrize("size", FAMILY_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("multi", [True, False], ids=["multimask", "single"])
def test_prompts_match_the_reference(family, size, case, multi):
    name, decoder, golden, bundles = family
    pred = decoder.predict(bundles[size], multimask=multi, **prompts(*size)[case])
    _check(name, pred, golden, f"{size[0]}x{size[1]}/{case}/{int(multi)}", multi, size)


@pytest.mark.parametrize("size", FAMILY_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("multi", [True, False], ids=["multimask", "single"])
def test_refining_click_with_previous_logits(family, size, multi):
    name, decoder, golden, bundles = family
    if not REFINES[name]:
        pytest.skip(f"{name}'s decoder takes no mask input")
    first = decoder.predict(bundles[size], multimask=True, **prompts(*size)["point"])
    best = first.low_res_logits[np.argmax(first.scores)][None]
    pred = decoder.predict(bundles[size], mask_input=best, multimask=multi, **refine_prompt(*size))
    _check(name, pred, golden, f"{size[0]}x{size[1]}/refine/{int(multi)}", multi, size)


@pytest.mark.parametrize("size", FAMILY_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", CASES)
def test_continuous_positions(family, size, case):
    """A continuous position p is the reference's c = p - 0.5 / s, s = 1024 / W (x) and 1024 / H (y):
    on a non-square frame the shift differs per axis."""
    name, decoder, golden, bundles = family
    h, w = size
    shift = np.array([0.5 * w / 1024, 0.5 * h / 1024])
    p = dict(prompts(h, w)[case])
    if "points" in p:
        p["points"] = np.asarray(p["points"], np.float64) + shift
    if "box" in p:
        p["box"] = (np.asarray(p["box"], np.float64).reshape(2, 2) + shift).ravel()
    pred = decoder.predict(bundles[size], multimask=True, continuous=True, **p)
    _check(name, pred, golden, f"{h}x{w}/{case}/1", True, size)
