"""GPU check: parity of a GPU provider with the CPU, and the engine bench as GPU/CPU ratios.

For a machine with a GPU and ``onnxruntime-gpu`` (only one onnxruntime package installed):

    python -m pip install onnxruntime-gpu numpy
    python bench/gpu_check.py                      # random ViT-B files of tools/make_vit_b.py

Both sides run through the plugin's own engine (SamEncoder / SamDecoder / point runner), on the
same files, in one process; the CPU side is the reference. Goals (issue 14): embedding cosine
>= 0.9999 per crop, mask IoU >= 0.99 per prompt. Exits 1 when a goal is missed, 2 when the
provider is not there. ``--provider CPUExecutionProvider --encoder ... --decoder ...`` runs the
script itself on any machine (ratios ~1), e.g. on the tiny test fixtures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from _common import VIT_B_DIR, median_s

from core.families import providers as pv
from core.sam_decoder import SamDecoder
from core.sam_encoder import SamEncoder
from core.segment import automatic as amg

PROMPTS = [([[300.5, 420.5]], [1], None), ([[700.5, 200.5], [650.5, 260.5]], [1, 0], None),
           (None, None, [200.0, 300.0, 600.0, 760.0]), ([[512.5, 512.5]], [1], [380.0, 380.0, 660.0, 640.0])]


def images(n: int, size: int = 1024) -> list:
    """Smooth random images (blobs, so that masks are not noise), ``[size, size, 3]`` uint8."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    out = []
    for _ in range(n):
        img = np.zeros((size, size, 3), np.float64)
        for _ in range(12):
            cx, cy, r = rng.random(3) * (1, 1, 0.2) + (0, 0, 0.05)
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
        out.append((img + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8))
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def per_point_s(decoder: SamDecoder, bundle, side: int) -> float:
    """Seconds per grid point of "segment everything" on one crop (Meta's filters off)."""
    h, w = bundle.original_size
    crops = [amg.crop_region((0, 0), (h, w), (0, 0, w, h))]
    points = amg.crop_points(crops, 0, side)
    params = amg.AmgParams(points_per_side=side)
    t = time.perf_counter()
    amg.crop_masks(decoder.point_runner(bundle), crops, 0, points, (0, 0, w, h), params)
    return (time.perf_counter() - t) / len(points)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--provider", default=pv.CUDA, help="provider to check against the CPU")
    ap.add_argument("--device-id", type=int, default=0)
    ap.add_argument("--encoder", default=str(VIT_B_DIR / "vit_b.encoder.preproc.onnx"))
    ap.add_argument("--decoder", default=str(VIT_B_DIR / "vit_b.decoder.onnx"))
    ap.add_argument("--crops", type=int, default=3, help="images encoded for parity and timing")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--side", type=int, default=16, help="points per side for segment everything")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    import onnxruntime as ort

    if args.provider not in ort.get_available_providers():
        print(f"{args.provider} is not offered by onnxruntime {ort.__version__} "
              f"({', '.join(ort.get_available_providers())}): install onnxruntime-gpu alone", file=sys.stderr)
        return 2
    choice = pv.ProviderChoice(args.provider, args.device_id)
    sides = {"cpu": (SamEncoder(args.encoder), SamDecoder(args.decoder)),
             "gpu": (SamEncoder(args.encoder, provider=choice), SamDecoder(args.decoder, provider=choice))}
    for name, (enc, dec) in sides.items():
        print(f"{name}: encoder on {enc.session.provider}, decoder on {dec.session.provider} {enc.session.note}")
    if sides["gpu"][0].session.provider != args.provider:
        print("the GPU side fell back to the CPU: see the note above", file=sys.stderr)
        return 2
    imgs = images(args.crops)
    bundles = {name: [enc.encode(img) for img in imgs] for name, (enc, _) in sides.items()}
    cosines = [cosine(c.embeddings, g.embeddings) for c, g in zip(bundles["cpu"], bundles["gpu"])]
    ious = []
    for c, g in zip(bundles["cpu"], bundles["gpu"]):
        for pts, labels, box in PROMPTS:
            want = sides["cpu"][1].predict(c, pts, labels, box, multimask=False).masks[0]
            ious.append(iou(want, sides["gpu"][1].predict(g, pts, labels, box, multimask=False).masks[0]))
            ious.append(iou(want, sides["gpu"][1].predict(c, pts, labels, box, multimask=False).masks[0]))
    figures = {"provider": args.provider, "onnxruntime": ort.__version__, "min_cosine": min(cosines),
               "min_mask_iou": min(ious)}
    for name, (enc, dec) in sides.items():
        bundle = bundles[name][0]
        figures[f"{name}_encode_s"] = median_s(lambda enc=enc: enc.encode(imgs[0]), args.runs)
        figures[f"{name}_decode_s"] = median_s(
            lambda dec=dec, b=bundle: dec.predict(b, [[300.5, 420.5]], [1]), args.runs * 10)
        figures[f"{name}_everything_per_point_s"] = per_point_s(dec, bundle, args.side)
    for what in ("encode", "decode", "everything_per_point"):
        figures[f"{what}_gpu_over_cpu"] = figures[f"gpu_{what}_s"] / figures[f"cpu_{what}_s"]
    print(f"{'':24}{'CPU':>12}{args.provider[:-17]:>12}{'GPU/CPU':>10}")
    for what, label in (("encode", "encode per crop"), ("decode", "decode per click"),
                        ("everything_per_point", "everything per point")):
        print(f"{label:24}{figures[f'cpu_{what}_s'] * 1e3:>10.1f}ms{figures[f'gpu_{what}_s'] * 1e3:>10.1f}ms"
              f"{figures[f'{what}_gpu_over_cpu']:>10.3f}")
    print(f"embedding cosine min {figures['min_cosine']:.6f} (goal >= 0.9999); "
          f"mask IoU min {figures['min_mask_iou']:.4f} (goal >= 0.99)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=1)
    return 0 if figures["min_cosine"] >= 0.9999 and figures["min_mask_iou"] >= 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())
