"""Speed and embedding fidelity of the int8 encoder against fp32, measured in the same run.

Builds the int8 encoder with the plugin's own code (core.families.quantize), then encodes
one random 1024x1024 image with both through SamEncoder, alternating runs. With
random weights the cosine only shows numeric drift, not quality on real weights.

usage (repo root; needs onnx, and ~3 GB RAM for ViT-B):
    flock /tmp/heavy.lock python bench/bench_quantize.py [ENCODER.onnx] [--runs 5] [--threads N]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.families.quantize import build_int8_encoder, int8_path
from core.sam_encoder import SamEncoder

DEFAULT = ".bench/models/vit_b.encoder.preproc.onnx"


def load(path: Path, threads: int) -> SamEncoder:
    t = time.perf_counter()
    enc = SamEncoder(path, threads=threads or None)
    print(f"  {path.name}: {path.stat().st_size / 2**20:.0f} MiB, session load {time.perf_counter() - t:.1f} s")
    return enc


def interleaved(encoders: list, image: np.ndarray, runs: int) -> tuple:
    """Median wall and CPU seconds per encode of each encoder, runs alternated between them.

    CPU time (all threads of this process) is reported too: on a shared machine
    it moves far less with other jobs' load than wall time does.

    Returns:
        (wall medians, CPU medians, embeddings ``[1*256*64*64]`` float64), one per encoder.
    """
    embs = [enc.encode(image).embeddings.astype(np.float64).ravel() for enc in encoders]  # warm-up
    wall: list = [[] for _ in encoders]
    cpu: list = [[] for _ in encoders]
    for _ in range(runs):
        for k, enc in enumerate(encoders):
            t, c = time.perf_counter(), time.process_time()
            enc.encode(image)
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    for enc, w, c in zip(encoders, wall, cpu):
        print(f"  {Path(enc.path).name}: wall {[round(x, 2) for x in w]} s, cpu {[round(x, 2) for x in c]} s")
    return [float(np.median(w)) for w in wall], [float(np.median(c)) for c in cpu], embs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("encoder", nargs="?", default=DEFAULT)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="0: onnxruntime's default")
    ap.add_argument("--rebuild", action="store_true", help="quantise again even if the int8 file exists")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's per-tensor warnings
    src = Path(args.encoder)
    dst = int8_path(src)
    if args.rebuild or not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime:
        t = time.perf_counter()
        build_int8_encoder(src, dst)
        print(f"quantised {src.name} -> {dst.name} in {time.perf_counter() - t:.1f} s")
    image = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    print(f"cpus {os.cpu_count()}, threads {args.threads or 'default'}, runs {args.runs}")
    encoders = [load(src, args.threads), load(dst, args.threads)]
    (fp32_s, int8_s), (fp32_cpu, int8_cpu), (ref, emb) = interleaved(encoders, image, args.runs)
    cosine = float(ref @ emb / np.linalg.norm(ref) / np.linalg.norm(emb))
    rel = float(np.linalg.norm(ref - emb) / np.linalg.norm(ref))
    print(f"fp32 median {fp32_s:.2f} s | int8 median {int8_s:.2f} s | speed-up {fp32_s / int8_s:.2f}x (wall)")
    print(f"fp32 cpu {fp32_cpu:.2f} s | int8 cpu {int8_cpu:.2f} s | speed-up {fp32_cpu / int8_cpu:.2f}x (cpu time)")
    print(f"embedding cosine {cosine:.5f}, relative L2 {rel:.4f}, max abs diff {np.abs(ref - emb).max():.4f}")
    print(f"size {src.stat().st_size / 2**20:.0f} MiB -> {dst.stat().st_size / 2**20:.0f} MiB, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
