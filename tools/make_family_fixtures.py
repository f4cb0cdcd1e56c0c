"""Regenerate the tiny random-weight SAM 2.1 and EfficientSAM fixtures and their goldens.

Run from the repository root in the torch export environment (README, "Regenerating test
fixtures"):

    PYTHONPATH=tools/stubs:tools:tests python tools/make_family_fixtures.py sam2 tests/fixtures
    PYTHONPATH=tools/stubs:tools:tests python tools/make_family_fixtures.py efficientsam tests/fixtures \
        --efficientsam-repo PATH/TO/EfficientSAM        # a local checkout of yformer/EfficientSAM
    PYTHONPATH=tools/stubs:tools:tests python tools/make_family_fixtures.py mobilesam

Each family writes tests/fixtures/<family>/tiny.encoder.onnx, tiny.decoder.onnx and
golden.npz (the reference predictor's outputs on the same weights), only after replaying
every golden case through ONNX Runtime with plain numpy pre/post-processing
(tools/family_numpy_ref.py) and asserting parity. ``mobilesam`` writes nothing: it checks
that a tiny MobileSAM exported by samexporter has the committed SAM fixtures' signature
and matches SamPredictor (see tests/fixtures/mobilesam/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

# Seeds picked so that the best-scoring of the three masks is not always the same index
# (a wrong multimask=False pick then fails), with a clear margin between the top two scores.
SAM2_SEED = 8
EFFICIENTSAM_SEED = 12
MOBILESAM_SEED = 0


def _publish(tmp: str, dest: str, golden: dict, names: tuple[str, ...]) -> None:
    """Move the checked files into dest (each by rename, after all checks passed)."""
    os.makedirs(dest, exist_ok=True)
    np.savez_compressed(os.path.join(tmp, "golden.npz"), **golden)
    for name in (*names, "golden.npz"):
        part = os.path.join(dest, f".{name}.part")
        shutil.copyfile(os.path.join(tmp, name), part)
        os.replace(part, os.path.join(dest, name))
        print(f"{dest}/{name} {os.path.getsize(os.path.join(dest, name))}")


def make_sam2(out: str) -> None:
    import family_sam2
    import tiny_sam2

    tmp = tempfile.mkdtemp(prefix="sam2-fixture-")
    ckpt = os.path.join(tmp, "tiny_sam2.1.pt")
    tiny_sam2.save_checkpoint(tiny_sam2.build_tiny_sam2(seed=SAM2_SEED), ckpt)
    enc, dec = os.path.join(tmp, "tiny.encoder.onnx"), os.path.join(tmp, "tiny.decoder.onnx")
    tiny_sam2.export_with_samexporter(ckpt, enc, dec)
    golden = family_sam2.golden(tiny_sam2.build_tiny_sam2(ckpt))
    print("sam2 check:", json.dumps(family_sam2.check(enc, dec, golden)))
    _publish(tmp, os.path.join(out, "sam2"), golden, ("tiny.encoder.onnx", "tiny.decoder.onnx"))
    shutil.rmtree(tmp)


def make_efficientsam(out: str, repo: str) -> None:
    import family_efficientsam
    import tiny_efficientsam

    tiny_efficientsam.use_checkout(repo)
    tmp = tempfile.mkdtemp(prefix="efficientsam-fixture-")
    model = tiny_efficientsam.build_tiny_efficient_sam(seed=EFFICIENTSAM_SEED)
    enc, dec = os.path.join(tmp, "tiny.encoder.onnx"), os.path.join(tmp, "tiny.decoder.onnx")
    tiny_efficientsam.export_with_official_exporter(model, enc, dec)
    golden = family_efficientsam.golden(model)
    print("efficientsam check:", json.dumps(family_efficientsam.check(enc, dec, golden)))
    _publish(tmp, os.path.join(out, "efficientsam"), golden, ("tiny.encoder.onnx", "tiny.decoder.onnx"))
    shutil.rmtree(tmp)


def check_mobilesam(reference_dir: str) -> None:
    import family_mobilesam

    print("mobilesam check:", json.dumps(family_mobilesam.check(reference_dir, seed=MOBILESAM_SEED)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("family", choices=("sam2", "efficientsam", "mobilesam"))
    ap.add_argument("out", nargs="?", default="tests/fixtures", help="fixtures folder (default tests/fixtures)")
    ap.add_argument("--efficientsam-repo", help="local checkout of yformer/EfficientSAM (efficientsam only)")
    args = ap.parse_args(argv)
    if args.family == "sam2":
        make_sam2(args.out)
    elif args.family == "efficientsam":
        if not args.efficientsam_repo:
            sys.exit("efficientsam needs --efficientsam-repo PATH (a local checkout of yformer/EfficientSAM)")
        make_efficientsam(args.out, args.efficientsam_repo)
    else:
        check_mobilesam(args.out)


if __name__ == "__main__":
    main()
