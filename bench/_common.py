"""Helpers shared by the benchmark scripts (timing medians, RSS, model paths)."""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, List

ROOT = Path(__file__).resolve().parents[1]
VIT_B_DIR = ROOT / ".bench" / "models"
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    """Current resident set size of this process, MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_s(fn: Callable[[], object], runs: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``runs`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def require_vit_b(*names: str) -> List[Path]:
    """Paths of the random-weight ViT-B files, or exit with the command that builds them."""
    paths = [VIT_B_DIR / n for n in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        sys.exit(
            f"missing {', '.join(str(p) for p in missing)}; build them (needs torch, see README) with:\n"
            f"  PYTHONPATH=tools/stubs <export-venv>/bin/python tools/make_vit_b.py {VIT_B_DIR}"
        )
    return paths


def env_threads() -> int:
    return int(os.environ.get("BENCH_THREADS", "0"))
