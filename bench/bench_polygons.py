"""Benchmark: mask -> refined, georeferenced MultiPolygon for a 1024x1024 SAM-like mask.

Goal: median <= 20 ms for ``mask_to_polygons`` with the default refinement.
Reference, measured in the same run: bare ``gdal.Polygonize`` of the same full
mask (MEM raster, the band as its own mask, into an in-memory OGR layer: driver MEM, or
Memory before GDAL 3.11).

Run: flock /tmp/heavy.lock .venv/bin/python bench/bench_polygons.py [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Dict, List

import _common  # noqa: F401 (puts the repository root on sys.path)
import numpy as np
from osgeo import gdal, ogr

from core.gdal_calls import memory_vectors
from core.polygon_exporter import mask_to_polygons
from core.segment.mask_ops import NO_REFINE, RefineParams

GT = (500000.0, 0.25, 0.0, 5000000.0, 0.0, -0.25)  # UTM, 25 cm pixels


def sam_like_mask(n: int = 1024, seed: int = 0) -> np.ndarray:
    """An irregular object covering ~30% of the frame, with two holes, a notch and speckles.

    The outline is a random-harmonic radius (smooth, like SAM's upscaled 256x256
    logits) plus pixel-scale roughness, so the staircase and refinement are realistic.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n] / n
    theta = np.arctan2(yy - 0.5, xx - 0.5)
    radius = 0.3 + sum(0.04 / k * np.sin(k * theta + rng.uniform(0, 2 * np.pi)) for k in range(1, 16))
    radius = radius + rng.normal(0, 0.6 / n, (n, n))  # sub-pixel-to-pixel jitter of the edge
    mask = np.hypot(yy - 0.5, xx - 0.5) < radius
    mask &= np.hypot(yy - 0.45, xx - 0.56) > 0.05  # two holes
    mask &= np.hypot((yy - 0.62) * 1.6, xx - 0.4) > 0.03
    mask &= ~((np.abs(yy - 0.5) < 0.01) & (xx > 0.75))  # a narrow notch
    speckles = rng.random((n, n)) < 2e-5  # isolated pixels in and out of the object
    return mask ^ speckles


def bare_polygonize(mask: np.ndarray) -> int:
    h, w = mask.shape
    raster = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
    raster.SetGeoTransform(GT)
    band = raster.GetRasterBand(1)
    band.WriteArray(mask.view(np.uint8))
    store = memory_vectors()
    layer = store.CreateLayer("mask", geom_type=ogr.wkbPolygon)
    gdal.Polygonize(band, band, layer, -1, [])
    return layer.GetFeatureCount()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    mask = sam_like_mask()
    defaults = RefineParams()
    result = mask_to_polygons(mask, GT, "", defaults)
    raw = mask_to_polygons(mask, GT, "", NO_REFINE)
    print(f"mask 1024x1024, {mask.mean():.1%} set, raw: {raw.n_parts} parts {raw.n_holes} holes; "
          f"refined {defaults}: {result.n_parts} parts {result.n_holes} holes, "
          f"{len(result.wkb) // 16} vs {len(raw.wkb) // 16} vertices (approx.)")

    cases = {
        "reference: bare gdal.Polygonize (full frame)": lambda: bare_polygonize(mask),
        "mask_to_polygons, NO_REFINE": lambda: mask_to_polygons(mask, GT, "", NO_REFINE),
        "mask_to_polygons, default RefineParams": lambda: mask_to_polygons(mask, GT, "", defaults),
    }
    times: Dict[str, List[float]] = {name: [] for name in cases}
    for i in range(args.runs + 2):  # interleaved, so background load hits every case alike
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            if i >= 2:  # warm-up
                times[name].append(time.perf_counter() - t)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    ref = medians[next(iter(cases))]
    print(f"{'what':44s} {'median ms':>10s} {'x reference':>12s}")
    for name, t in medians.items():
        print(f"{name:44s} {t * 1e3:10.2f} {t / ref:12.2f}")
    full = medians["mask_to_polygons, default RefineParams"]
    print(f"goal <= 20 ms: {'met' if full <= 0.020 else 'NOT met'}")


if __name__ == "__main__":
    main()
