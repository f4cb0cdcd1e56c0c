"""EfficientSAM fixtures: goldens from EfficientSAM's own model code on the tiny weights,
and a numpy + ONNX Runtime replay of every golden case (asserted before anything is written).

The reference is upstream's forward path: ``get_image_embeddings`` (bilinear resize to
1024x1024 and ImageNet normalisation of a 0..1 image) then ``predict_masks`` with
multimask_output=True, full-size masks by its bicubic upscaling, thresholded with
``torch.ge(logits, 0)`` as upstream's example does; multimask off = the highest predicted
IoU, as upstream's notebook sorts them. EfficientSAM has no mask input (no refinement case).
check() needs only numpy and onnxruntime.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from family_numpy_ref import efficientsam_image, efficientsam_prompt, iou, upscale_masks
from sam_cases import FAMILY_SIZES, make_image, prompts

LOGIT_STRIDE = 8
MASK_STRIDE = 2
EMB_STEPS = (16, 2, 2)  # golden image_embeddings[0, ::16, ::2, ::2]
CASES = ("point", "three_points", "box", "box_point")


def golden(model) -> dict:
    import torch

    g = {"logit_stride": LOGIT_STRIDE, "mask_stride": MASK_STRIDE, "sizes": np.array(FAMILY_SIZES),
         "emb_steps": np.array(EMB_STEPS)}
    with torch.no_grad():
        for h, w in FAMILY_SIZES:
            key = f"{h}x{w}"
            image = torch.from_numpy(efficientsam_image(make_image(h, w)))
            emb = model.get_image_embeddings(image)
            g[f"{key}/image_embeddings"] = _sub(emb.numpy())
            for name in CASES:
                coords, labels = (torch.from_numpy(a) for a in efficientsam_prompt(**_kw(prompts(h, w)[name])))
                run = dict(image_embeddings=emb, batched_points=coords, batched_point_labels=labels,
                           multimask_output=True, input_h=h, input_w=w)
                low, scores = model.predict_masks(**run)  # output_h/w = -1: [1, 1, 3, 256, 256]
                full, _ = model.predict_masks(**run, output_h=h, output_w=w)  # bicubic to (h, w)
                low, scores, masks = low[0, 0].numpy(), scores[0, 0].numpy(), torch.ge(full[0, 0], 0).numpy()
                for multi, sel in ((1, np.arange(3)), (0, np.array([np.argmax(scores)]))):
                    k = f"{key}/{name}/{multi}"
                    g[f"{k}/logits"] = np.ascontiguousarray(low[sel, ::LOGIT_STRIDE, ::LOGIT_STRIDE])
                    g[f"{k}/scores"] = scores[sel].astype(np.float32)
                    g[f"{k}/masks"] = np.packbits(masks[sel, ::MASK_STRIDE, ::MASK_STRIDE], axis=-1)
    return g


def _sub(emb: np.ndarray) -> np.ndarray:
    c, y, x = EMB_STEPS
    return np.ascontiguousarray(emb[0, ::c, ::y, ::x])


def _kw(p: dict) -> dict:
    return {k: p.get(k) for k in ("points", "labels", "box")}


def check(encoder: str, decoder: str, g: dict) -> dict:
    """Replay the golden cases: IoU >= 0.99 for masks upscaled from the low-res output with
    numpy bicubic, logits/scores within 1e-4 at 1024x1024; the graph's own bilinear
    ``output_masks`` are measured against the bicubic reference too."""
    enc = ort.InferenceSession(encoder, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(decoder, providers=["CPUExecutionProvider"])
    stats = {"min_iou": 1.0, "min_iou_graph_bilinear": 1.0, "max_emb_diff": 0.0, "max_logit_diff_1024": 0.0,
             "max_logit_diff_resized": 0.0, "max_score_diff": 0.0, "cases": 0, "best_indices": [],
             "min_top2_margin": 1.0, "low_res_output": dec.get_outputs()[2].name}
    ms, s = int(g["mask_stride"]), int(g["logit_stride"])
    for h, w in FAMILY_SIZES:
        key = f"{h}x{w}"
        (emb,) = enc.run(None, {"batched_images": efficientsam_image(make_image(h, w))})
        ref = g[f"{key}/image_embeddings"]
        diff = float(np.abs(_sub(emb) - ref).max() / max(1.0, np.abs(ref).max()))
        stats["max_emb_diff"] = max(stats["max_emb_diff"], diff)
        assert diff <= 1e-4, (key, diff)
        for name in CASES:
            coords, labels = efficientsam_prompt(**_kw(prompts(h, w)[name]))
            graph_masks, scores, low = dec.run(None, {
                "image_embeddings": emb, "batched_point_coords": coords, "batched_point_labels": labels,
                "orig_im_size": np.array([h, w], np.int64)})
            graph_masks, scores, low = graph_masks[0, 0], scores[0, 0], low[0]
            top = np.sort(scores)
            stats["min_top2_margin"] = min(stats["min_top2_margin"], float(top[-1] - top[-2]))
            stats["best_indices"] = sorted(set(stats["best_indices"]) | {int(np.argmax(scores))})
            full = upscale_masks(low, h, w, "bicubic") >= 0.0
            for multi, sel in ((1, np.arange(3)), (0, np.array([np.argmax(scores)]))):
                k = f"{key}/{name}/{multi}"
                stats["cases"] += 1
                ldiff = float(np.abs(low[sel, ::s, ::s] - g[f"{k}/logits"]).max())
                sdiff = float(np.abs(scores[sel] - g[f"{k}/scores"]).max())
                stats["max_score_diff"] = max(stats["max_score_diff"], sdiff)
                if (h, w) == (1024, 1024):
                    stats["max_logit_diff_1024"] = max(stats["max_logit_diff_1024"], ldiff)
                    assert ldiff <= 1e-4 and sdiff <= 1e-4, (k, ldiff, sdiff)
                else:
                    stats["max_logit_diff_resized"] = max(stats["max_logit_diff_resized"], ldiff)
                refm = np.unpackbits(g[f"{k}/masks"], axis=-1)[..., : -(-w // ms)].astype(bool)
                for i, j in enumerate(sel):
                    v = iou(full[j, ::ms, ::ms], refm[i])
                    stats["min_iou"] = min(stats["min_iou"], v)
                    assert v >= 0.99, (k, i, v)
                    vg = iou(graph_masks[j, ::ms, ::ms] >= 0.0, refm[i])
                    stats["min_iou_graph_bilinear"] = min(stats["min_iou_graph_bilinear"], vg)
    return stats
