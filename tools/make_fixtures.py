"""Regenerate the tiny random-weight SAM test models and SamPredictor golden outputs.

Needs the export environment (torch==2.13.0, segment-anything==1.0,
samexporter==0.5.0 --no-deps, onnx, onnxscript, pillow); see README
"Regenerating test fixtures". Run from the repository root:

    PYTHONPATH=tools/stubs:tools:tests python tools/make_fixtures.py tests/fixtures

Writes tiny.encoder.preproc.onnx (HxWx3 input), tiny.encoder.onnx (1x3x1024x1024),
tiny.decoder.onnx (4 masks) and golden.npz.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile

import numpy as np
import samexporter.export_decoder as export_decoder
import samexporter.export_encoder as export_encoder
import tiny_sam
import torch
from sam_cases import SIZES, make_image, prompts, refine_prompt
from segment_anything import SamPredictor

SEED = 0
EMB_STEP = 16  # a subsample keeps golden.npz small
LOGIT_STRIDE = 8


def export(out: str) -> str:
    ckpt = os.path.join(tempfile.mkdtemp(), "tiny.pth")
    torch.save(tiny_sam.build_tiny_sam(seed=SEED).state_dict(), ckpt)
    tiny_sam.register("tiny")
    jobs = [
        ("tiny.encoder.preproc.onnx", export_encoder.run_export, dict(use_preprocess=True)),
        ("tiny.encoder.onnx", export_encoder.run_export, dict(use_preprocess=False)),
        ("tiny.decoder.onnx", export_decoder.run_export, dict(return_single_mask=False)),
    ]
    for name, fn, kw in jobs:
        with contextlib.redirect_stdout(io.StringIO()):
            fn(model_type="tiny", checkpoint=ckpt, output=os.path.join(out, name), opset=18, **kw)
    return ckpt


def golden(ckpt: str) -> dict:
    predictor = SamPredictor(tiny_sam.build_tiny_sam(checkpoint=ckpt))
    g = {}
    for h, w in SIZES:
        key = f"{h}x{w}"
        predictor.set_image(make_image(h, w), image_format="RGB")
        g[f"{key}/embeddings"] = predictor.features.detach().numpy()[0, ::EMB_STEP]
        g[f"{key}/input_size"] = np.array(predictor.input_size)
        cases = prompts(h, w)
        for name, p in cases.items():
            for multi in (True, False):
                _store(g, f"{key}/{name}/{int(multi)}", predictor, p, multi)
        _, scores, logits = predictor.predict(**_torch_args(cases["point"]), multimask_output=True)
        refine = dict(refine_prompt(h, w), mask_input=logits[np.argmax(scores)][None])
        for multi in (True, False):
            _store(g, f"{key}/refine/{int(multi)}", predictor, refine, multi)
    return g


def _torch_args(p: dict) -> dict:
    out = {}
    if "points" in p:
        out["point_coords"] = np.array(p["points"], np.float64)
        out["point_labels"] = np.array(p["labels"])
    if "box" in p:
        out["box"] = np.array(p["box"], np.float64)
    if "mask_input" in p:
        out["mask_input"] = p["mask_input"]
    return out


def _store(g: dict, key: str, predictor: SamPredictor, p: dict, multi: bool) -> None:
    masks, scores, logits = predictor.predict(**_torch_args(p), multimask_output=multi)
    g[f"{key}/masks"] = np.packbits(masks, axis=-1)
    g[f"{key}/scores"] = scores
    g[f"{key}/logits"] = logits[:, ::LOGIT_STRIDE, ::LOGIT_STRIDE]


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    ckpt = export(out)
    np.savez_compressed(os.path.join(out, "golden.npz"), logit_stride=LOGIT_STRIDE, emb_step=EMB_STEP, **golden(ckpt))
    for f in sorted(os.listdir(out)):
        print(f, os.path.getsize(os.path.join(out, f)))


if __name__ == "__main__":
    main()
