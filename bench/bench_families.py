"""All model families in one run: plugin vs raw onnxruntime, and the first mask on a new raster.

Rows, per family (the families alternate in every round, so load from other processes hits all):
  encode   SamEncoder.encode of one 1024 x 1024 crop (the family's pre-processing, cancellable run,
           output checks, bundle) over a raw session.run of the same graph on a feed made beforehand,
           same session options (the ratio is the plugin's overhead, not onnxruntime's settings).
  decode   SamDecoder.predict of one click (continuous position, masks upscaled to 1024 x 1024 as the
           family's predictor does) over a raw session.run of the decoder (all outputs, the graph's
           own full-size masks where it has them). SAM 2.1's graph gives low-res logits only, so
           "full" also times the raw run plus the same upscale the plugin (and SAM2ImagePredictor) does.
  cancel   from CancelToken.cancel() during an encode (0.3 s into it) to the encode raising: the
           latency of a cancelled encoding task (RunOptions.terminate).
  first    the first click's mask on a new 20,000 px raster, in a fresh process: the raster already
           open and RasterSegmenter.prepare() done (what the GUI does when the raster is chosen), then
           click -> crop encoded (the encoder loads here) -> mask. "cold" adds opening the raster,
           loading the decoder and prepare().
Goals: plugin/raw <= 1.10 for encode and decode; MobileSAM's first mask <= 1.5 s on 2 cores.
Use --rounds 4 or more (an even number: plugin and raw take turns going first).

    .venv/bin/python bench/bench_families.py [--models DIR ...] [--rounds 3] [--clicks 20] [--workdir DIR]

Models are found by their graph (core.families.detect.probe) in the given folders; by default
.bench/models here and in the fixtures worktree (random weights: MobileSAM, SAM 2.1 tiny,
EfficientSAM-Ti from the fixtures helper, ViT-B from tools/make_vit_b.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from _common import ROOT

DEFAULT_DIRS = [ROOT / ".bench" / "models", ROOT.parent / "fixtures" / ".bench" / "models"]
SIZE = 20000


def find_models(dirs: List[Path]) -> List[Tuple[str, str, str]]:
    """``(label, encoder, decoder)`` per model: files grouped by family and name prefix, fp32 only."""
    from core.errors import ModelError
    from core.families import detect

    found: Dict[Tuple[str, str], Dict[str, str]] = {}
    for d in dirs:
        for p in sorted(Path(d).glob("*.onnx")) if Path(d).is_dir() else []:
            if ".int8." in p.name or ".tmp" in p.name:
                continue
            try:
                kind = detect.probe(p)
            except ModelError:
                continue
            if kind.role == "encoder" and ".preproc" not in p.name and kind.family == "sam" \
                    and (p.parent / p.name.replace(".encoder.", ".encoder.preproc.")).exists():
                continue  # SAM: the plugin's usual --use-preprocess encoder
            prefix = p.name.split(".encoder")[0].split(".decoder")[0]
            found.setdefault((kind.family, prefix), {})[kind.role] = str(p)
    return [(f"{fam}:{prefix}", m["encoder"], m["decoder"]) for (fam, prefix), m in sorted(found.items())
            if {"encoder", "decoder"} <= set(m)]


def image(h: int = 1024, w: int = 1024) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = 100 + 60 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
    return np.clip(np.stack([base, base + 30, base - 30], -1), 0, 255).astype(np.uint8)


class Bench:
    """Plugin and raw sessions of one model, and what each run needs."""

    def __init__(self, label: str, enc: str, dec: str) -> None:
        from core.families import onnx_session as ox
        from core.sam_decoder import SamDecoder
        from core.sam_encoder import SamEncoder

        self.label = label
        self.encoder, self.decoder = SamEncoder(enc), SamDecoder(dec)
        self.img = image()
        feed, _ = self.encoder._impl.prepare(self.img)  # the raw run gets its feed for free
        self.raw_enc = ox.open_session(enc, "encoder", None, low_memory=True)
        self.raw_enc_feed, self.raw_enc_ro = feed, ox.shrinking_run_options()
        self.raw_dec = ox.open_session(dec, "decoder")
        self.bundle = self.encoder.encode(self.img)
        self.raw_dec_feed = raw_decoder_feed(self.decoder.family.name, self.bundle)
        self.times: Dict[str, List[float]] = {k: [] for k in ("enc", "raw_enc", "dec", "raw_dec", "raw_full",
                                                              "cancel")}
        self.rng = np.random.default_rng(0)
        self.flip = False

    def _time(self, key: str, fn) -> None:
        t = time.perf_counter()
        fn()
        self.times[key].append(time.perf_counter() - t)

    def round(self, clicks: int) -> None:
        runs = [("enc", lambda: self.encoder.encode(self.img)),
                ("raw_enc", lambda: self.raw_enc.run(None, self.raw_enc_feed, self.raw_enc_ro))]
        self.flip = not self.flip  # plugin first in one round, raw first in the next
        for key, fn in runs[::-1] if self.flip else runs:
            self._time(key, fn)
        for x, y in self.rng.uniform(100, 924, (clicks, 2)):
            self._time("dec", lambda x=x, y=y: self.decoder.predict(self.bundle, [[x, y]], [1], continuous=True))
            feed = raw_decoder_feed(self.decoder.family.name, self.bundle, (x, y))
            self._time("raw_dec", lambda feed=feed: self.raw_dec.run(None, feed))
            self._time("raw_full", lambda feed=feed: self.raw_full(feed))

    def raw_full(self, feed: dict) -> None:
        """The raw run with full-size masks: SAM 2.1's graph stops at low-res logits."""
        out = self.raw_dec.run(None, feed)
        if self.decoder.family.name == "sam2":
            self.decoder._impl.upscale(out[0][0], self.bundle)

    def cancel(self) -> None:
        from core.families.onnx_session import CancelToken, EncodeCancelledError

        token, stopped = CancelToken(), []

        def work() -> None:
            try:
                self.encoder.encode(self.img, token)
            except EncodeCancelledError:
                stopped.append(time.perf_counter())

        thread = threading.Thread(target=work)
        thread.start()
        while not token.running:
            time.sleep(0.001)
        time.sleep(0.3)
        t = time.perf_counter()
        token.cancel()
        thread.join()
        if stopped:  # else the encode ended before the cancel: nothing to time
            self.times["cancel"].append(stopped[0] - t)

    def medians(self) -> Dict[str, float]:
        return {k: statistics.median(v) if v else float("nan") for k, v in self.times.items()}


def raw_decoder_feed(family: str, bundle, point=(512.0, 512.0)) -> dict:
    """What a caller of the bare graph would send for one click at ``point`` on a 1024 x 1024 image."""
    x, y = point
    h, w = bundle.original_size
    if family == "sam":
        return {"image_embeddings": bundle.embeddings,
                "point_coords": np.array([[[x, y], [0, 0]]], np.float32),
                "point_labels": np.array([[1, -1]], np.float32),
                "mask_input": np.zeros((1, 1, 256, 256), np.float32), "has_mask_input": np.zeros(1, np.float32),
                "orig_im_size": np.array([h, w], np.float32)}
    if family == "sam2":
        return {"image_embed": bundle.embeddings, **bundle.extras,
                "point_coords": np.array([[[x, y]]], np.float32), "point_labels": np.ones((1, 1), np.float32),
                "mask_input": np.zeros((1, 1, 256, 256), np.float32), "has_mask_input": np.zeros(1, np.float32)}
    return {"image_embeddings": bundle.embeddings, "batched_point_coords": np.array([[[[x, y]]]], np.float32),
            "batched_point_labels": np.ones((1, 1, 1), np.float32), "orig_im_size": np.array([h, w], np.int64)}


# --- first mask on a new raster, in a fresh process ---


def child_first(raster: str, enc: str, dec: str, cache: str) -> dict:
    t0 = time.perf_counter()
    from bench_raster import prompt_at

    from core.raster.raster_source import RasterSource
    from core.segment import segmenter as sg
    from core.segment.embedding_cache import EmbeddingCache

    sg.MAX_RECENTRES = 0  # random weights fill the crop: time one click, as on a small object
    t1 = time.perf_counter()
    seg = sg.RasterSegmenter(RasterSource.open(raster), enc, dec, EmbeddingCache(cache))
    seg.prepare()
    seg.cache.encoder_hash(enc)  # the GUI hashes the encoder in the same background task
    t2 = time.perf_counter()
    prompt = prompt_at(0.45 * SIZE + 0.5, 0.55 * SIZE + 0.5)
    try:
        seg.segment(prompt)
        raise RuntimeError("the crop was cached already")
    except sg.NotEncodedError as exc:
        seg.encode(exc.crop)
    res = seg.segment(prompt)
    t3 = time.perf_counter()
    return {"imports_s": t1 - t0, "prepare_s": t2 - t1, "first_s": t3 - t2, "cold_s": t3 - t1,
            "encode_s": seg.seconds_per_crop(), "mask_px": int(res.masks[0].sum())}


def first_mask(raster: str, enc: str, dec: str, work: str) -> dict:
    cache = tempfile.mkdtemp(prefix="cache_", dir=work)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", raster, enc, dec, cache]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", type=Path, default=DEFAULT_DIRS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--workdir", help="keeps the 20,000 px raster between runs (default: a temp dir)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child_first(*a.child)))
        return
    from bench_raster import make_raster

    models = find_models(a.models)
    if not models:
        sys.exit(f"no encoder/decoder pairs found in {', '.join(map(str, a.models))}")
    print("models:", ", ".join(f"{label} ({os.path.basename(e)}, {os.path.basename(d)})" for label, e, d in models))
    work = a.workdir or tempfile.mkdtemp(prefix="bench_families_")
    os.makedirs(work, exist_ok=True)
    raster = os.path.join(work, f"ortho_{SIZE}.tif")
    if not os.path.exists(raster):
        make_raster(raster, SIZE)

    benches = [Bench(*m) for m in models]
    for b in benches:
        b.round(2)  # warm-up
        b.times = {k: [] for k in b.times}
    firsts: Dict[str, List[dict]] = {b.label: [] for b in benches}
    for _ in range(a.rounds):
        for b, (label, enc, dec) in zip(benches, models):
            b.round(a.clicks)
            b.cancel()
            firsts[label].append(first_mask(raster, enc, dec, work))

    print(f"\n{a.rounds} rounds, families alternating; medians. threads: onnxruntime default, "
          f"{os.cpu_count()} CPUs")
    print("| model | encode plugin / raw | ratio | decode plugin / raw | ratio | vs raw + full-size masks | cancel "
          "| first mask (cold) | its encode |")
    print("|---|---|---|---|---|---|---|---|---|")
    for b in benches:
        m = b.medians()
        f = firsts[b.label]
        first = statistics.median(x["first_s"] for x in f)
        cold = statistics.median(x["cold_s"] for x in f)
        enc_s = statistics.median(x["encode_s"] for x in f)
        print(f"| {b.label} | {m['enc']:.3f} / {m['raw_enc']:.3f} s | {m['enc'] / m['raw_enc']:.2f} | "
              f"{m['dec'] * 1e3:.1f} / {m['raw_dec'] * 1e3:.1f} ms | {m['dec'] / m['raw_dec']:.2f} | "
              f"{m['dec'] / m['raw_full']:.2f} | {m['cancel'] * 1e3:.0f} ms | {first:.2f} s ({cold:.2f} s) | "
              f"{enc_s:.2f} s |")


if __name__ == "__main__":
    main()
