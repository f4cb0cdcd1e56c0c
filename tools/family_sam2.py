"""SAM 2.1 fixtures: SAM2ImagePredictor goldens on the tiny weights, and a numpy + ONNX
Runtime replay of every golden case (asserted before anything is written).

check() needs only numpy and onnxruntime, so it also runs in the plugin's venv:
    PYTHONPATH=tools:tests .venv/bin/python -c "import numpy as np, family_sam2 as f; \
        d='tests/fixtures/sam2/'; print(f.check(d+'tiny.encoder.onnx', d+'tiny.decoder.onnx', np.load(d+'golden.npz')))"
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from family_numpy_ref import iou, sam2_image, sam2_prompt, upscale_masks
from sam_cases import FAMILY_SIZES, make_image, prompts, refine_prompt

LOGIT_STRIDE = 8
MASK_STRIDE = 2  # full-size masks kept at every 2nd row and column, bit-packed along x
# golden feature subsamples: [0, ::c, ::y, ::x]
FEATURE_STEPS = {"image_embed": (16, 2, 2), "high_res_feats_0": (8, 8, 8), "high_res_feats_1": (8, 4, 4)}
CASES = ("point", "three_points", "box", "box_point")


def _sub(a: np.ndarray, steps) -> np.ndarray:
    return np.ascontiguousarray(a[0, :: steps[0], :: steps[1], :: steps[2]])


def _args(p: dict) -> dict:
    out = {}
    if "points" in p:
        out["point_coords"] = np.array(p["points"], np.float64)
        out["point_labels"] = np.array(p["labels"])
    if "box" in p:
        out["box"] = np.array(p["box"], np.float64)
    if "mask_input" in p:
        out["mask_input"] = p["mask_input"]
    return out


def golden(model) -> dict:
    """SAM2ImagePredictor outputs for FAMILY_SIZES x (CASES + refine) x multimask on/off."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor  # torch side only: check() runs without it

    predictor = SAM2ImagePredictor(model)
    g = {"logit_stride": LOGIT_STRIDE, "mask_stride": MASK_STRIDE, "sizes": np.array(FAMILY_SIZES)}
    g.update({f"feature_steps/{k}": np.array(v) for k, v in FEATURE_STEPS.items()})
    for h, w in FAMILY_SIZES:
        key = f"{h}x{w}"
        predictor.set_image(make_image(h, w))
        feats = {"image_embed": predictor._features["image_embed"],
                 "high_res_feats_0": predictor._features["high_res_feats"][0],
                 "high_res_feats_1": predictor._features["high_res_feats"][1]}
        for name, f in feats.items():
            g[f"{key}/{name}"] = _sub(f.numpy(), FEATURE_STEPS[name])
        cases = {name: prompts(h, w)[name] for name in CASES}
        _, scores, logits = predictor.predict(**_args(cases["point"]), multimask_output=True)
        cases["refine"] = dict(refine_prompt(h, w), mask_input=logits[np.argmax(scores)][None])
        for name, p in cases.items():
            multi = _store(g, f"{key}/{name}/1", predictor, p, True)
            single = _store(g, f"{key}/{name}/0", predictor, p, False)
            # True when sam2 kept its single-mask token 0 (stable): not among the 3 exported masks
            g[f"{key}/{name}/0/single_token"] = np.array(
                not any(np.allclose(single[0], m, atol=1e-6) for m in multi))
    return g


def _store(g: dict, key: str, predictor, p: dict, multi: bool) -> np.ndarray:
    masks, scores, logits = predictor.predict(**_args(p), multimask_output=multi)
    g[f"{key}/masks"] = np.packbits(masks[:, ::MASK_STRIDE, ::MASK_STRIDE] > 0.5, axis=-1)
    g[f"{key}/scores"] = scores.astype(np.float32)
    g[f"{key}/logits"] = np.ascontiguousarray(logits[:, ::LOGIT_STRIDE, ::LOGIT_STRIDE]).astype(np.float32)
    return logits


def check(encoder: str, decoder: str, g: dict) -> dict:
    """Replay every golden case with the ONNX files and plain numpy pre/post-processing.

    Returns worst-case figures; asserts IoU >= 0.99 everywhere the exported decoder can
    express the reference's choice, and logits/scores within 1e-4 at 1024x1024 (no resize).
    """
    enc = ort.InferenceSession(encoder, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(decoder, providers=["CPUExecutionProvider"])
    stats = {"min_iou": 1.0, "max_feat_diff": 0.0, "max_logit_diff_1024": 0.0, "max_logit_diff_resized": 0.0,
             "max_score_diff": 0.0, "single_token_cases": 0, "cases": 0, "best_indices": [], "min_top2_margin": 1.0}
    for h, w in FAMILY_SIZES:
        key = f"{h}x{w}"
        hr0, hr1, emb = enc.run(None, {"image": sam2_image(make_image(h, w))})
        feats = {"image_embed": emb, "high_res_feats_0": hr0, "high_res_feats_1": hr1}
        for name, f in feats.items():
            ref = g[f"{key}/{name}"]
            diff = float(np.abs(_sub(f, FEATURE_STEPS[name]) - ref).max() / max(1.0, np.abs(ref).max()))
            stats["max_feat_diff"] = max(stats["max_feat_diff"], diff)
            assert diff <= (1e-4 if (h, w) == (1024, 1024) else 5e-3), (key, name, diff)
        feeds = {"image_embed": emb, "high_res_feats_0": hr0, "high_res_feats_1": hr1}
        cases = {name: prompts(h, w)[name] for name in CASES}
        first_masks, first_scores = _decode(dec, feeds, h, w, cases["point"], None)
        cases["refine"] = dict(refine_prompt(h, w), mask_input=first_masks[np.argmax(first_scores)][None, None])
        for name, p in cases.items():
            logits, scores = _decode(dec, feeds, h, w, p, p.get("mask_input"))
            top = np.sort(scores)
            stats["min_top2_margin"] = min(stats["min_top2_margin"], float(top[-1] - top[-2]))
            stats["best_indices"] = sorted(set(stats["best_indices"]) | {int(np.argmax(scores))})
            for multi in (1, 0):
                k = f"{key}/{name}/{multi}"
                if not multi and bool(g[f"{k}/single_token"]):
                    stats["single_token_cases"] += 1
                    continue
                sel = np.arange(3) if multi else np.array([np.argmax(scores)])
                _compare(stats, g, k, logits[sel], scores[sel], h, w)
    return stats


def _decode(dec, feeds: dict, h: int, w: int, p: dict, mask_input) -> tuple[np.ndarray, np.ndarray]:
    coords, labels = sam2_prompt(h, w, p.get("points"), p.get("labels"), p.get("box"))
    has = mask_input is not None
    mask = mask_input.astype(np.float32) if has else np.zeros((1, 1, 256, 256), np.float32)
    out = dec.run(None, dict(feeds, point_coords=coords, point_labels=labels, mask_input=mask,
                             has_mask_input=np.array([1.0 if has else 0.0], np.float32)))
    return out[0][0], out[1][0]


def _compare(stats: dict, g: dict, k: str, logits: np.ndarray, scores: np.ndarray, h: int, w: int) -> None:
    stats["cases"] += 1
    s = int(g["logit_stride"])
    ldiff = float(np.abs(logits[:, ::s, ::s] - g[f"{k}/logits"]).max())
    sdiff = float(np.abs(scores - g[f"{k}/scores"]).max())
    stats["max_score_diff"] = max(stats["max_score_diff"], sdiff)
    if (h, w) == (1024, 1024):
        stats["max_logit_diff_1024"] = max(stats["max_logit_diff_1024"], ldiff)
        assert ldiff <= 1e-4 and sdiff <= 1e-4, (k, ldiff, sdiff)
    else:
        stats["max_logit_diff_resized"] = max(stats["max_logit_diff_resized"], ldiff)
    ms = int(g["mask_stride"])
    ref = np.unpackbits(g[f"{k}/masks"], axis=-1)[..., : -(-w // ms)].astype(bool)
    full = (upscale_masks(logits, h, w, "bilinear") > 0.0)[:, ::ms, ::ms]
    assert full.shape == ref.shape, (k, full.shape, ref.shape)
    for i in range(len(full)):
        v = iou(full[i], ref[i])
        stats["min_iou"] = min(stats["min_iou"], v)
        assert v >= 0.99, (k, i, v)
