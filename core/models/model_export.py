"""Exporting a SAM checkpoint to ONNX with samexporter, in a Python that has PyTorch (the advanced path).

Qt-free. The checkpoints themselves (URLs and checksums) are in the model catalogue.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, List, Optional

from .. import fs_checks as fs
from ..dependency_manager import command_text, run_streaming
from ..errors import ModelError
from . import catalogue

EXPORT_SETUP = (
    "pip install torch segment-anything==1.0 onnx onnxscript",
    "pip install --no-deps samexporter==0.5.0",
)
EXPORT_MODULES = ("torch", "segment_anything", "samexporter", "onnx")


def export_names(model_type: str) -> tuple:
    """``(encoder, decoder)`` file names an export of ``model_type`` writes."""
    return f"{model_type}.encoder.preproc.onnx", f"{model_type}.decoder.onnx"


def export_commands(
    python: str, checkpoint: os.PathLike, model_type: str, out_dir: os.PathLike
) -> List[List[str]]:
    """samexporter 0.5.0 command lines (encoder with ``--use-preprocess``, then decoder).

    ``samexporter export-encoder`` as printed in some READMEs does not exist; the
    entry points are the ``samexporter.export_encoder`` / ``export_decoder`` modules.
    """
    known = catalogue.shipped().checkpoints
    if model_type not in known:
        raise ModelError(f"unknown SAM model type '{model_type}'; choose one of {', '.join(known)}")
    enc, dec = (Path(out_dir) / name for name in export_names(model_type))
    common = ["--checkpoint", os.fspath(checkpoint)]
    return [
        [python, "-m", "samexporter.export_encoder", *common, "--output", os.fspath(enc),
         "--model-type", model_type, "--use-preprocess"],
        [python, "-m", "samexporter.export_decoder", *common, "--output", os.fspath(dec),
         "--model-type", model_type],
    ]


def export_instructions(checkpoint: os.PathLike, model_type: str, out_dir: os.PathLike) -> str:
    """The exact commands to export by hand, in a Python environment with PyTorch."""
    cmds = [command_text(c) for c in export_commands("python", checkpoint, model_type, out_dir)]
    return (
        "In a Python environment with PyTorch (not QGIS's), run:\n\n"
        + "\n".join(EXPORT_SETUP) + "\n" + "\n".join(cmds)
        + "\n\nThen press 'Refresh' here; the files are picked up from the models folder."
    )


def run_export(
    python: str,
    checkpoint: os.PathLike,
    model_type: str,
    out_dir: os.PathLike,
    on_line: Optional[Callable[[str], None]] = None,
    cancelled: Optional[Callable[[], bool]] = None,
) -> List[Path]:
    """Run :func:`export_commands` with ``python`` and move the results into ``out_dir``.

    The export writes into a hidden staging folder first, so an interrupted one
    leaves no half-written model where discovery would find it (large models
    also write external-data files beside the ``.onnx``).

    Raises:
        ModelError: the models folder cannot be written, or samexporter failed;
        ProcessCancelledError: ``cancelled()`` turned True.
    """
    out_dir = fs.check_folder(os.fspath(out_dir), "models folder", create=True, error=ModelError)
    try:
        staging = tempfile.mkdtemp(prefix=".export-", dir=out_dir)
    except OSError as exc:
        raise fs.os_error(exc, "write", "models folder", out_dir, error=ModelError) from None
    try:
        for cmd in export_commands(python, checkpoint, model_type, staging):
            if on_line:
                on_line(command_text(cmd))
            code, lines = run_streaming(cmd, on_line, cancelled)
            if code != 0:
                last = lines[-1] if lines else "no output"
                raise ModelError(f"samexporter failed (exit code {code}): {last}")
        moved = []
        for name in sorted(os.listdir(staging)):
            dest = os.path.join(out_dir, name)
            try:
                os.replace(os.path.join(staging, name), dest)
            except OSError as exc:
                raise fs.os_error(exc, "write", "exported model file", dest, error=ModelError) from None
            moved.append(Path(dest))
        return moved
    finally:
        shutil.rmtree(staging, ignore_errors=True)
