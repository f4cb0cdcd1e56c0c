"""Build random-weight ViT-B SAM ONNX files for benchmarks (no checkpoint can be downloaded here).

Uses samexporter's own CLI entry points on a random ViT-B checkpoint, so the
files have exactly the real ViT-B graph, sizes and latency. Needs the export
environment (see README "Regenerating test fixtures"). Run from the repo root:

    PYTHONPATH=tools/stubs python tools/make_vit_b.py .bench/models

Writes vit_b.encoder.preproc.onnx, vit_b.encoder.onnx and vit_b.decoder.onnx;
existing files are kept.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from segment_anything import sam_model_registry


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    ckpt = os.path.join(out, "rand_vit_b.pth")
    if not os.path.exists(ckpt):
        torch.manual_seed(0)
        torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)
    jobs = [
        ("vit_b.encoder.preproc.onnx", "samexporter.export_encoder", ["--use-preprocess"]),
        ("vit_b.encoder.onnx", "samexporter.export_encoder", []),
        ("vit_b.decoder.onnx", "samexporter.export_decoder", []),
    ]
    for name, module, extra in jobs:
        path = os.path.join(out, name)
        if os.path.exists(path):
            continue
        tmp = path[:-5] + ".tmp.onnx"
        cmd = [sys.executable, "-m", module, "--checkpoint", ckpt, "--output", tmp, "--model-type", "vit_b"]
        subprocess.run(cmd + extra, check=True, stdout=subprocess.DEVNULL)
        os.replace(tmp, path)
        print("wrote", path, os.path.getsize(path))


if __name__ == "__main__":
    main()
