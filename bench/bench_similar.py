"""Find similar and embedding export over a 4,000 x 4,000 px encoded extent (25 crops of 1024 px).

The raster holds 64 px objects on a jittered grid (tests/similar_scene.py's pattern); every crop
is encoded first with the synthetic colour encoder (tests/fixtures/colour.encoder.onnx, real
cache entries, not timed). Rows, medians of --runs after a warm-up:

  1. find similar, scoring: signature, cosine over every cell of the 25 crops (read from the
     cache), stitching, peaks with NMS. Goal on 2 cores: <= 2 s.
     Reference: reading the 25 crops from the cache alone (the I/O floor), and a bare numpy
     cosine over the same features already stacked in memory.
  2. find similar, segmenting the peaks with the tiny decoder (re-centring off, as random
     weights would send every click through it): per peak.
  3. export of 3 principal components (PCA fit on a sample, stitching, GeoTIFF). Goal: <= 5 s.
     Reference: two reads of the 25 crops (sampling pass + export pass), and a bare GDAL write
     of the same 3-band float32 GeoTIFF.

    flock /tmp/heavy.lock .venv/bin/python bench/bench_similar.py [--runs 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import _common  # noqa: F401 (puts the repository root on sys.path)
import numpy as np
from _common import ROOT, median_s
from osgeo import gdal

sys.path.insert(0, str(ROOT / "tests"))

from similar_scene import GT, SIZE, scene, square_wkb, write_raster

import core.segment.segmenter as sg
from core.embeddings.embedding_export import export_embeddings
from core.embeddings.features import CellGrid, image_features
from core.embeddings.similarity import Example, SimilarParams, SimilarSearch
from core.raster.raster_source import RasterSource
from core.segment.embedding_cache import EmbeddingCache
from core.segment.segmenter import MapPrompt, NotEncodedError, RasterSegmenter

SIDE = 4000
FIXTURES = ROOT / "tests" / "fixtures"


def targets(side: int, step: int = 250, seed: int = 1):
    """Top-left corners of objects on a ``step`` px grid, jittered so they sit at every grid phase."""
    rng = np.random.default_rng(seed)
    return [(int(c + rng.integers(0, 100)), int(r + rng.integers(0, 100)))
            for r in range(60, side - SIZE - 160, step) for c in range(60, side - SIZE - 160, step)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--peaks", type=int, default=50, help="peaks segmented in row 2")
    a = ap.parse_args()
    work = a.workdir or tempfile.mkdtemp(prefix="bench_similar_")
    objects = targets(SIDE)
    path = write_raster(os.path.join(work, "panels.tif"), scene(SIDE, SIDE, objects, {}), GT, tiled=True)
    seg = RasterSegmenter(RasterSource.open(path), str(FIXTURES / "colour.encoder.onnx"),
                          str(FIXTURES / "tiny.decoder.onnx"), EmbeddingCache(os.path.join(work, "cache")))
    crops = seg.crops_in_extent()
    start = time.perf_counter()
    for crop in crops:
        seg.encode(crop)
    print(f"raster {SIDE} x {SIDE} px, {len(objects)} objects, {len(crops)} crops encoded in "
          f"{time.perf_counter() - start:.1f} s (colour encoder; not counted below); "
          f"numpy threads: {os.environ.get('OMP_NUM_THREADS', 'default')}, {os.cpu_count()} cores")

    example = Example(1, square_wkb(*objects[0]))
    params = SimilarParams(0.9, 1000)

    def score():
        search = SimilarSearch(seg, [example], None, params)
        return search, search.peaks(search.score())

    t_score = median_s(score, a.runs)
    search, peaks = score()
    t_read = median_s(lambda: [seg.embedding(c) for c in crops], a.runs)
    stacked = np.stack([image_features(seg.embedding(c)).values.reshape(256, -1) for c in crops])
    sig = search.signatures[0].vector

    def bare_cosine():
        return np.einsum("c,kcn->kn", sig, stacked) / np.linalg.norm(stacked, axis=1)

    t_bare = median_s(bare_cosine, a.runs)
    print(f"1. find similar, scoring + peaks: {t_score:.3f} s (goal <= 2 s); {len(peaks)} peaks for "
          f"{len(objects) - 1} other objects")
    print(f"   vs reading the {len(crops)} crops from the cache {t_read:.3f} s: {t_score / t_read:.2f}x; "
          f"vs bare numpy cosine on stacked features {t_bare * 1000:.1f} ms: {t_score / t_bare:.0f}x")

    sg.MAX_RECENTRES = 0

    def segment(xy):
        while True:
            try:
                return seg.segment(MapPrompt(points=(xy,), labels=(1,)), multimask=True)
            except NotEncodedError as exc:
                seg.encode(exc.crop)

    some = peaks[: a.peaks]
    search.objects(some[:2], segment)  # warm-up: decoder and post-processing sessions
    t0 = time.perf_counter()
    found = search.objects(some, segment)
    t_seg = time.perf_counter() - t0
    print(f"2. segmenting {len(some)} peaks with the tiny decoder: {t_seg:.2f} s, "
          f"{1000 * t_seg / max(len(some), 1):.0f} ms per peak ({len(found)} objects after duplicates)")

    def features(crop):
        return image_features(seg.embedding(crop))

    src = seg.source
    grid = CellGrid.of(crops[0], features(crops[0]), src.width, src.height)
    window = grid.window()
    out = os.path.join(work, "pca.tif")
    t_pca = median_s(lambda: export_embeddings(out, crops, features, grid, window, src.geotransform, src.crs_wkt, 3),
                     a.runs)
    data = gdal.Open(out).ReadAsArray()

    def bare_write():
        ds = gdal.GetDriverByName("GTiff").Create(os.path.join(work, "bare.tif"), window.cols, window.rows, 3,
                                                  gdal.GDT_Float32, ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=3"])
        ds.SetGeoTransform(grid.geotransform(src.geotransform, window))
        for b in range(3):
            ds.GetRasterBand(b + 1).WriteArray(data[b])
        del ds

    t_write = median_s(bare_write, a.runs)
    print(f"3. export of 3 principal components ({window.cols} x {window.rows} cells): {t_pca:.3f} s (goal <= 5 s)")
    print(f"   vs reading the crops twice {2 * t_read:.3f} s: {t_pca / (2 * t_read):.2f}x; "
          f"vs bare GDAL write of the same GeoTIFF {t_write * 1000:.1f} ms")


if __name__ == "__main__":
    main()
