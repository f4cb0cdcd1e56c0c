"""Segment-everything benchmark: time per crop of core.segment.automatic against raw decoder runs.

On one 1024 x 1024 crop with the random-weight ViT-B decoder (tools/make_vit_b.py) and a
random embedding, compares, per grid point:
  raw      the decoder alone (one include point, low-res outputs only): the floor;
  predict  SamDecoder.predict (every candidate upscaled to the crop), what filtering at full
           resolution as Meta's code does would cost at least;
  amg-all  crop_masks with every filter off (every candidate upscaled: the worst case);
  amg-meta crop_masks with Meta's default thresholds.
Prints the best of ``--rounds`` interleaved rounds: seconds per crop and the ratio to ``raw``.

    flock /tmp/heavy.lock .venv/bin/python bench/bench_automatic.py [--points-per-side 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import env_threads, require_vit_b

from tools.plugin_package import plugin_module


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _interleaved(variants: dict, rounds: int) -> dict:
    """Best seconds of each variant over ``rounds`` rounds that take them in turn (resists other load)."""
    best = {name: float("inf") for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            best[name] = min(best[name], _timed(fn))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points-per-side", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    amg = plugin_module("core.segment.automatic")
    embedding_cls = plugin_module("core.sam_encoder").ImageEmbedding
    point_decoder = plugin_module("processing_provider.point_decoder").PointDecoder
    (dec_path,) = require_vit_b("vit_b.decoder.onnx")
    threads = env_threads() or None
    decoder = point_decoder(str(dec_path), threads)
    rng = np.random.default_rng(0)
    emb = embedding_cls(rng.standard_normal((1, 256, 64, 64)).astype(np.float32), (1024, 1024), (1024, 1024))
    crops = [amg.crop_region((0, 0), (1024, 1024), (0, 0, 1024, 1024))]
    points = amg.crop_points(crops, 0, args.points_per_side)
    run = decoder.point_runner(emb)
    run(points[0])  # warm-up

    def pipeline(params):
        return lambda: amg.crop_masks(run, crops, 0, points, (0, 0, 1024, 1024), params)

    off = amg.AmgParams(pred_iou_thresh=0.0, stability_score_thresh=0.0)
    variants = {
        "raw": lambda: [run(p) for p in points],
        "predict": lambda: [decoder.predict(emb, [p], [1]) for p in points],
        "amg-all": pipeline(off),
        "amg-meta": pipeline(amg.AmgParams()),
    }
    results = _interleaved(variants, args.rounds)
    kept = sum(len(r) for r in amg.crop_masks(run, crops, 0, points, (0, 0, 1024, 1024), off))
    print(f"{len(points)} points on a 1024 x 1024 crop, ViT-B decoder, threads={threads or 'default'}; "
          f"amg-all kept {kept} masks after NMS")
    for name, seconds in results.items():
        print(f"{name:9s} {seconds:7.2f} s/crop  {1000 * seconds / len(points):6.1f} ms/point  "
              f"x{seconds / results['raw']:.2f} raw")
    full = 32 * 32 / len(points)
    print(f"at Meta's 32 x 32 points: about {results['amg-meta'] * full:.0f} s per crop (amg-meta)")


if __name__ == "__main__":
    main()
