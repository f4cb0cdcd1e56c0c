"""The setup dialog's advanced actions: export a checkpoint with samexporter, build the int8 encoder."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, List

from qgis.PyQt.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from ...core import dependency_manager as deps
from ...core.errors import SegmentationError
from ...core.families import quantize
from ...core.models import model_export as mx
from ...core.models import model_manager as mm


class AdvancedActions:
    """Mixed into :class:`~.setup_dialog.SetupDialog`, whose attributes and helpers it uses."""

    def export_checkpoint(self: Any) -> None:
        ckpt, _ = QFileDialog.getOpenFileName(self, "SAM checkpoint", str(self.models_dir),
                                              "PyTorch checkpoints (*.pth *.pt)")
        if not ckpt:
            return
        model_type = mm.guess_model_type(ckpt)
        if model_type is None:
            keys = list(self.catalogue.checkpoints)
            model_type, ok = QInputDialog.getItem(self, "SAM model type", "Model type of this checkpoint",
                                                  keys, 0, False)
            if not ok:
                return
        python = deps.find_python(sys.executable, sys.exec_prefix)
        found = deps.probe_modules(python, mx.EXPORT_MODULES) if python else {}
        absent = [m for m in mx.EXPORT_MODULES if not found.get(m)]
        if absent:
            box = QMessageBox(QMessageBox.Icon.Question, "Export from checkpoint",
                              f"QGIS's Python lacks {', '.join(absent)}. Export with another Python that has "
                              "PyTorch and samexporter, or show the commands to run by hand?", parent=self)
            choose = box.addButton("Choose Python…", QMessageBox.ButtonRole.AcceptRole)
            box.addButton("Show commands", QMessageBox.ButtonRole.RejectRole)
            box.exec()
            python = None
            if box.clickedButton() is choose:
                python = QFileDialog.getOpenFileName(self, "Python with PyTorch and samexporter")[0] or None
            found = deps.probe_modules(python, mx.EXPORT_MODULES) if python else {}
        if not python or not all(found.get(m) for m in mx.EXPORT_MODULES):
            text = mx.export_instructions(ckpt, model_type, self.models_dir)
            self._log(text)
            QMessageBox.information(self, "Export by hand", text)
            return
        self._run_export(python, ckpt, model_type)

    def _run_export(self: Any, python: str, ckpt: str, model_type: str) -> None:
        out_dir = self.models_dir

        def job(on_line: Callable[[str], None], cancelled: Callable[[], bool]) -> List[Path]:
            return mx.run_export(python, ckpt, model_type, out_dir, on_line, cancelled)

        self._start(f"Exporting {os.path.basename(ckpt)}", job, self._made_models)

    def build_int8(self: Any) -> None:
        reason = quantize.unavailable_reason()
        if reason:
            raise SegmentationError(reason)
        enc = mm.fp32_encoder(self.entries, self.panel.selected_file())
        if enc is None:
            raise SegmentationError("no fp32 SAM encoder to quantise: export or copy one into the models folder")
        dst = self.models_dir / quantize.int8_path(enc.path).name
        src = enc.path

        def job(on_line: Callable[[str], None], cancelled: Callable[[], bool]) -> List[Path]:
            on_line("quantising: seconds for ViT-B, longer for ViT-H; Cancel discards the result at the end")
            built = quantize.build_int8_encoder(src, dst)
            path = built.path
            on_line(f"int8 encoder's cosine to fp32 on a test image: {built.cosine:.5f}")
            if cancelled():
                path.unlink()
                return []
            return [path]

        self._start(f"Building int8 encoder from {os.path.basename(src)}", job, self._made_models)

    def _made_models(self: Any, paths: List[Path]) -> None:
        self._log("Written: " + ", ".join(str(p) for p in paths))
        self._select_after_refresh = "files"  # the best pair of loose files: the new int8 encoder or export
        self.refresh_models()
