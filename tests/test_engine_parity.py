"""ONNX engine vs segment_anything.SamPredictor on the same tiny random weights."""

from __future__ import annotations

import numpy as np
import pytest
from sam_cases import SIZES, make_image, prompts, refine_prompt

from core.families.transforms import resized_shape
from core.sam_encoder import SamEncoder

CASES = ["point", "three_points", "box", "box_point"]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@pytest.fixture(scope="module")
def embeddings(encoder):
    return {size: encoder.encode(make_image(*size)) for size in SIZES}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("variant", ["encoder_preproc", "encoder"])
def test_embeddings_match_sampredictor(size, variant, tiny_paths, golden, embeddings):
    key = f"{size[0]}x{size[1]}"
    if variant == "encoder_preproc":
        emb = embeddings[size]
    else:
        emb = SamEncoder(tiny_paths[variant]).encode(make_image(*size))
    assert emb.embeddings.shape == (1, 256, 64, 64) and emb.embeddings.dtype == np.float32
    assert emb.original_size == size
    assert emb.input_size == tuple(golden[f"{key}/input_size"])
    sub = emb.embeddings[0, :: int(golden["emb_step"])]
    ref = golden[f"{key}/embeddings"]
    assert np.abs(sub - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def _check(pred, golden, key, multi):
    stride = int(golden["logit_stride"])
    ref_masks = np.unpackbits(golden[f"{key}/masks"], axis=-1)[..., : pred.masks.shape[-1]].astype(bool)
    k = 3 if multi else 1
    assert pred.masks.shape == ref_masks.shape and pred.masks.shape[0] == k and pred.masks.dtype == bool
    assert pred.scores.shape == (k,) and pred.low_res_logits.shape == (k, 256, 256)
    assert np.abs(pred.low_res_logits[:, ::stride, ::stride] - golden[f"{key}/logits"]).max() <= 1e-4
    assert np.abs(pred.scores - golden[f"{key}/scores"]).max() <= 1e-4
    for i in range(k):
        assert ref_masks[i].any(), "degenerate golden mask"
        assert iou(pred.masks[i], ref_masks[i]) >= 0.99


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("multi", [True, False], ids=["multimask", "single"])
def test_prompts_match_sampredictor(size, case, multi, decoder, golden, embeddings):
    pred = decoder.predict(embeddings[size], multimask=multi, **prompts(*size)[case])
    _check(pred, golden, f"{size[0]}x{size[1]}/{case}/{int(multi)}", multi)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("multi", [True, False], ids=["multimask", "single"])
def test_refining_click_with_previous_logits(size, multi, decoder, golden, embeddings):
    emb = embeddings[size]
    first = decoder.predict(emb, multimask=True, **prompts(*size)["point"])
    best = first.low_res_logits[np.argmax(first.scores)][None]
    pred = decoder.predict(emb, mask_input=best, multimask=multi, **refine_prompt(*size))
    _check(pred, golden, f"{size[0]}x{size[1]}/refine/{int(multi)}", multi)
    assert not np.array_equal(pred.low_res_logits, first.low_res_logits[: pred.low_res_logits.shape[0]])


def _continuous(p: dict, size) -> dict:
    """SamPredictor's coordinates c as continuous positions: c + 0.5 / s, s = resized / original per axis."""
    h, w = size
    new_h, new_w = resized_shape(h, w)
    shift = np.array([0.5 * w / new_w, 0.5 * h / new_h])
    out = dict(p)
    if "points" in p:
        out["points"] = np.asarray(p["points"], np.float64) + shift
    if "box" in p:
        out["box"] = (np.asarray(p["box"], np.float64).reshape(2, 2) + shift).ravel()
    return out


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", CASES)
def test_continuous_positions_land_where_sampredictor_puts_them(size, case, decoder, golden, embeddings):
    """A continuous position p is SamPredictor's c = p - 0.5 / s: the same masks and logits, at every size
    (at 300x200 the shift is 0.15 px in x and 0.15 px in y, not SamPredictor's flat 0.5)."""
    pred = decoder.predict(embeddings[size], multimask=True, continuous=True, **_continuous(prompts(*size)[case], size))
    _check(pred, golden, f"{size[0]}x{size[1]}/{case}/1", True)
