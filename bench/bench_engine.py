"""Engine benchmark: SamEncoder/SamDecoder against raw onnxruntime and PyTorch SamPredictor.

Each figure is a ratio against a reference measured in the same run, on random-weight
ViT-B files (tools/make_vit_b.py). Each measurement runs in its own process so peak
RSS is its own. Run it with the plugin's Python (QGIS's numpy); the PyTorch reference
runs in the export environment given by --torch-python (skipped without it):

    .venv/bin/python bench/bench_engine.py --torch-python <export-venv>/bin/python [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
from _common import ROOT, median_s, peak_rss_mb, require_vit_b, rss_mb

ENC, ENC_NCHW, DEC = "vit_b.encoder.preproc.onnx", "vit_b.encoder.onnx", "vit_b.decoder.onnx"


def _image(h: int = 1024, w: int = 1024) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def child_raw_encoder(runs: int) -> dict:
    import onnxruntime as ort

    (enc,) = require_vit_b(ENC)
    sess = ort.InferenceSession(str(enc), providers=["CPUExecutionProvider"])  # default options
    feed = {"input_image": _image().astype(np.float32)}
    rss0 = rss_mb()
    t = median_s(lambda: sess.run(None, feed), runs)
    return {"median_s": t, "peak_added_mb": peak_rss_mb() - rss0, "rss_after_added_mb": rss_mb() - rss0}


def child_encoder(runs: int, name: str = ENC) -> dict:
    from core.sam_encoder import SamEncoder

    (enc,) = require_vit_b(name)
    encoder = SamEncoder(enc)
    img = _image()
    rss0 = rss_mb()
    t = median_s(lambda: encoder.encode(img), runs)
    return {"median_s": t, "peak_added_mb": peak_rss_mb() - rss0, "rss_after_added_mb": rss_mb() - rss0}


def child_torch(runs: int) -> dict:
    import torch
    from segment_anything import SamPredictor, sam_model_registry

    torch.manual_seed(0)
    predictor = SamPredictor(sam_model_registry["vit_b"](checkpoint=None).eval())
    img = _image()
    return {"median_s": median_s(lambda: predictor.set_image(img), runs)}


def child_decoder(runs: int) -> dict:
    import onnxruntime as ort

    from core.families.transforms import apply_coords
    from core.sam_decoder import SamDecoder
    from core.sam_encoder import ImageEmbedding

    (dec,) = require_vit_b(DEC)
    raw = ort.InferenceSession(str(dec), providers=["CPUExecutionProvider"])
    decoder = SamDecoder(dec)
    emb = ImageEmbedding(np.random.default_rng(1).standard_normal((1, 256, 64, 64)).astype(np.float32),
                         (1024, 1024), (1024, 1024))
    out = {}
    prompts = {"point": dict(points=[[500.0, 400.0]], labels=[1]), "box": dict(box=[300.0, 200.0, 700.0, 650.0])}
    for name, p in prompts.items():
        if "box" in p:
            coords, labels = np.array(p["box"]).reshape(2, 2), np.array([2.0, 3.0])
        else:
            coords, labels = np.array(p["points"] + [[0.0, 0.0]]), np.array([1.0, -1.0])
        feed = {  # what a caller of the raw graph feeds: its own full-size masks
            "image_embeddings": emb.embeddings,
            "point_coords": apply_coords(coords, (1024, 1024))[None].astype(np.float32),
            "point_labels": labels[None].astype(np.float32),
            "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.array([1024, 1024], np.float32),
        }
        t_raw = median_s(lambda feed=feed: raw.run(None, feed), runs, warmup=3)
        t_ours = median_s(lambda p=p: decoder.predict(emb, **p), runs, warmup=3)
        out[name] = {"raw_s": t_raw, "predict_s": t_ours, "ratio": t_ours / t_raw}
    return out


CHILDREN = {"raw_encoder": child_raw_encoder, "encoder": child_encoder, "torch": child_torch,
            "decoder": child_decoder, "encoder_nchw": lambda runs: child_encoder(runs, ENC_NCHW)}


def run_child(name: str, runs: int, python: str = sys.executable) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tools" / "stubs"))  # torchvision/timm stand-ins
    proc = subprocess.run([python, __file__, "--child", name, "--runs", str(runs)],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--torch-python", help="a Python with torch and segment-anything, for the reference")
    ap.add_argument("--child", choices=sorted(CHILDREN))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.runs)))
        return
    require_vit_b(ENC, ENC_NCHW, DEC)
    r = {name: run_child(name, 20 * args.runs if name == "decoder" else args.runs)
         for name in CHILDREN if name != "torch"}
    no_torch = {"error": "no --torch-python"}
    r["torch"] = run_child("torch", args.runs, args.torch_python) if args.torch_python else no_torch
    enc, raw = r["encoder"], r["raw_encoder"]
    print(json.dumps(r, indent=1))
    print(f"\n| measure (ViT-B random weights, 1024x1024, median of {args.runs}) | ours | reference | ratio | goal |")
    print("|---|---|---|---|---|")
    print(f"| SamEncoder.encode vs raw session.run (default options) | {enc['median_s']:.2f} s "
          f"| {raw['median_s']:.2f} s | {enc['median_s'] / raw['median_s']:.2f} | <= 1.10 |")
    print(f"| SamEncoder.encode, NCHW encoder variant vs raw | {r['encoder_nchw']['median_s']:.2f} s "
          f"| {raw['median_s']:.2f} s | {r['encoder_nchw']['median_s'] / raw['median_s']:.2f} | <= 1.10 |")
    if "median_s" in r["torch"]:
        print(f"| PyTorch SamPredictor.set_image / SamEncoder.encode | {enc['median_s']:.2f} s "
              f"| {r['torch']['median_s']:.2f} s | {r['torch']['median_s'] / enc['median_s']:.2f}x faster "
              f"| >= 2.5x |")
    else:
        print(f"| PyTorch SamPredictor.set_image | skipped: {r['torch'].get('error')} | | | |")
    for name in ("point", "box"):
        d = r["decoder"][name]
        print(f"| SamDecoder.predict ({name}) vs raw session.run | {d['predict_s'] * 1e3:.1f} ms "
              f"| {d['raw_s'] * 1e3:.1f} ms | {d['ratio']:.2f} | <= 1.3 |")
    print(f"| peak RSS added by encoding | {enc['peak_added_mb'] / 1024:.2f} GB "
          f"| {raw['peak_added_mb'] / 1024:.2f} GB (raw, arena on) | | <= 3 GB |")
    print(f"| RSS still held after encoding | {enc['rss_after_added_mb']:.0f} MB "
          f"| {raw['rss_after_added_mb']:.0f} MB (raw, arena on) | | close to 0 |")


if __name__ == "__main__":
    main()
