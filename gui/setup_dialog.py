"""First-run setup: Python packages (installed on consent), model files, int8 encoder.

The widget only calls core functions; every long job runs in a QgsTask (pip,
discovery, export, quantisation) or through QGIS's network stack (download),
with progress and Cancel.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

from qgis.core import QgsApplication, QgsNetworkAccessManager, QgsTask
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtNetwork import QNetworkProxy
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core import dependency_manager as deps
from ..core import model_manager as mm
from ..core import quantize
from ..core.errors import SegmentationError
from ..core.model_download import ModelDownload
from ..toolbelt.log import guarded
from ..toolbelt.metadata import PLUGIN_DIR

log = logging.getLogger("ai_segmentation")
Job = Callable[[Callable[[str], None], Callable[[], bool]], Any]  # job(on_line, cancelled) -> result


class _Task(QgsTask):
    """Runs ``job(on_line, cancelled)`` off the GUI thread; results arrive through signals."""

    line = pyqtSignal(str)
    done = pyqtSignal(bool, str, object)  # ok, error message, result

    def __init__(self, title: str, job: Job) -> None:
        super().__init__(title, QgsTask.Flag.CanCancel)
        self._job, self._result, self._error = job, None, ""

    def run(self) -> bool:
        try:
            self._result = self._job(self.line.emit, self.isCanceled)
        except SegmentationError as exc:
            self._error = str(exc)
        except Exception as exc:  # shown to the user in the log view, with the traceback in the log
            log.exception("setup task '%s' failed", self.description())
            self._error = f"unexpected error: {type(exc).__name__}: {exc}"
        return not self._error and not self.isCanceled()

    def finished(self, ok: bool) -> None:
        self.done.emit(ok, self._error or ("cancelled" if self.isCanceled() else ""), self._result)


class SetupDialog(QDialog):
    """Setup of packages and models.

    Args:
        parent: parent widget (the dock).
        models_dir: the user's models folder; downloads, exports and int8 encoders go there.
        profile_dir: QGIS profile folder; defaults to ``QgsApplication.qgisSettingsDirPath()``.

    Signals:
        modelsChanged(encoder, decoder): a usable pair was chosen or newly made.
        dependenciesInstalled(): packages were installed and put on ``sys.path``.
    """

    modelsChanged = pyqtSignal(str, str)  # noqa: N815 (Qt signal naming)
    dependenciesInstalled = pyqtSignal()  # noqa: N815

    def __init__(self, parent: Optional[QWidget] = None, models_dir: Optional[str] = None,
                 profile_dir: Optional[str] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("AI Segmentation setup")
        self.resize(760, 640)
        self.profile_dir = Path(profile_dir or QgsApplication.qgisSettingsDirPath())
        self.models_dir = Path(models_dir or PLUGIN_DIR / "models")
        self.deps_target = deps.deps_dir(self.profile_dir)
        self.cache_path = self.profile_dir / "ai_segmentation" / "model_index.json"
        self.entries: List[mm.ModelEntry] = []
        self._task: Optional[_Task] = None
        self._download: Optional[ModelDownload] = None
        self._select_after_refresh = False
        self._missing: List[deps.Requirement] = []
        self._build_ui()
        self.refresh_dependencies()
        self.refresh_models()

    # ---------------------------------------------------------------- layout

    def _build_ui(self) -> None:
        col = QVBoxLayout(self)
        pkg = QGroupBox("Python packages")
        pcol = QVBoxLayout(pkg)
        self.deps_label = QLabel()
        self.deps_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.with_onnx = QCheckBox("Also install onnx (needed only to build the fast int8 encoder)")
        self.install_button = QPushButton("Install missing packages…")
        self.install_button.clicked.connect(self._action(self.install_dependencies))
        pcol.addWidget(self.deps_label)
        pcol.addWidget(self.with_onnx)
        pcol.addWidget(self.install_button)
        col.addWidget(pkg)

        models = QGroupBox(f"Models (in {self.models_dir})")
        mcol = QVBoxLayout(models)
        self.model_list = QListWidget()
        self.pair_label = QLabel()
        self.pair_label.setWordWrap(True)
        row = QHBoxLayout()
        self.spec_combo = QComboBox()
        for spec in mm.REGISTRY.values():
            self.spec_combo.addItem(spec.title, spec.key)
        buttons = [
            ("Download checkpoint", self.download_checkpoint),
            ("Export from checkpoint…", self.export_checkpoint),
            ("Build fast int8 encoder", self.build_int8),
            ("Refresh", self.refresh_models),
            ("Use these models", self.use_pair),
        ]
        row.addWidget(self.spec_combo)
        self.model_buttons = {}
        for text, slot in buttons:
            b = QPushButton(text)
            b.clicked.connect(self._action(slot))
            row.addWidget(b)
            self.model_buttons[text] = b
        mcol.addWidget(self.model_list)
        mcol.addWidget(self.pair_label)
        mcol.addLayout(row)
        col.addWidget(models)

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.progress = QProgressBar()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._action(self.cancel))
        prow = QHBoxLayout()
        prow.addWidget(self.progress)
        prow.addWidget(self.cancel_button)
        col.addWidget(self.log_view)
        col.addLayout(prow)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        col.addWidget(close)
        self._set_busy(False)

    def _action(self, slot: Callable[[], None]) -> Callable[..., None]:
        """Button slot: a :class:`SegmentationError` becomes a message box, anything else is reported."""

        @guarded
        def run(*_: Any) -> None:
            try:
                slot()
            except SegmentationError as exc:
                self._log(str(exc))
                QMessageBox.warning(self, self.windowTitle(), str(exc))

        return run

    def _set_busy(self, busy: bool, maximum: int = 0) -> None:
        self.progress.setRange(0, maximum if busy else 1)
        self.progress.setValue(0)
        self.cancel_button.setEnabled(busy)
        self.install_button.setEnabled(not busy)
        for b in self.model_buttons.values():
            b.setEnabled(not busy)

    def _log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def _start(self, title: str, job: Job, on_done: Callable[[Any], None]) -> None:
        """Run ``job`` in a QgsTask; ``on_done(result)`` runs on success, errors go to the log view."""
        self._log(f"— {title}")
        self._set_busy(True)
        task = _Task(title, job)
        task.line.connect(self._log)

        def done(ok: bool, error: str, result: Any) -> None:
            self._task = None
            self._set_busy(False)
            if ok:
                on_done(result)
            else:
                self._log(f"{title}: {error}")
                if not task.isCanceled():  # the user knows they cancelled
                    QMessageBox.warning(self, title, error)

        task.done.connect(guarded(done))
        self._task = task
        QgsApplication.taskManager().addTask(task)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._download is not None:
            self._download.cancel()

    def done(self, result: int) -> None:
        """Closing the dialog stops what it started (its slots must not outlive it)."""
        self.cancel()
        super().done(result)

    def busy(self) -> bool:
        """True while a job or download runs (tests wait on this)."""
        return self._task is not None or self._download is not None

    # ---------------------------------------------------------------- packages

    def refresh_dependencies(self) -> None:
        statuses = deps.detect()
        self._missing = deps.missing(statuses)
        lines = [s.describe() for s in statuses] + [f"Private folder: {self.deps_target}"]
        self.deps_label.setText("\n".join(lines))
        onnx_missing = any(r.name == "onnx" for r in deps.missing(statuses, include_optional=True))
        self.with_onnx.setChecked(onnx_missing and not self._missing)
        self.with_onnx.setEnabled(onnx_missing)
        self.install_button.setText("Install…" if self._missing or onnx_missing else "All packages installed")

    def _proxy(self) -> Optional[str]:
        proxy = QgsNetworkAccessManager.instance().fallbackProxy()
        http = (QNetworkProxy.ProxyType.HttpProxy, QNetworkProxy.ProxyType.HttpCachingProxy)
        if proxy.type() in http and proxy.hostName():
            return f"http://{proxy.hostName()}:{proxy.port()}"
        return None

    def install_dependencies(self) -> None:
        wanted = list(self._missing)
        if self.with_onnx.isChecked():
            wanted += [r for r in deps.REQUIREMENTS if r.name == "onnx"]
        if not wanted:
            return
        python = deps.qgis_python()
        plan = deps.install_plan(wanted, self.deps_target, python)
        answer = QMessageBox.question(self, "Install Python packages", plan + "\n\nInstall now?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        specs, target, proxy = [r.pip_spec for r in wanted], self.deps_target, self._proxy()

        def installed(_: Any) -> None:
            self._log("Packages installed.")
            self.refresh_dependencies()
            self.dependenciesInstalled.emit()

        self._start("Installing packages",
                    lambda on_line, cancelled: deps.install(specs, target, python, on_line, cancelled, proxy),
                    installed)

    # ---------------------------------------------------------------- models

    def folders(self) -> List[Path]:
        return list(dict.fromkeys([PLUGIN_DIR / "models", self.models_dir]))

    def refresh_models(self) -> None:
        """Re-discover model files (validation runs in a task; results are cached)."""
        folders, cache = self.folders(), self.cache_path

        def job(on_line: Callable[[str], None], cancelled: Callable[[], bool]) -> List[mm.ModelEntry]:
            return mm.discover(folders, cache, lambda i, n, p: on_line(f"checking {p}"), cancelled)

        self._start("Looking for models", job, self._show_models)

    def _show_models(self, entries: List[mm.ModelEntry]) -> None:
        self.entries = entries
        self.model_list.clear()
        for e in entries:
            item = QListWidgetItem(mm.describe(e))
            item.setToolTip(e.path)
            item.setData(Qt.ItemDataRole.UserRole, e.path)
            self.model_list.addItem(item)
        if not entries:
            self.model_list.addItem("No model files yet: download a checkpoint and export it, or copy "
                                    f"samexporter .onnx files into {self.models_dir}")
        pair = self.selected_pair()
        if pair and self._select_after_refresh:  # a new int8 encoder or export is used at once
            self._select_after_refresh = False
            self.modelsChanged.emit(*pair)
        self.pair_label.setText(
            f"Will use: {os.path.basename(pair[0])} + {os.path.basename(pair[1])}" if pair
            else "No usable encoder + decoder pair yet."
        )

    def selected_pair(self) -> Optional[tuple]:
        """``(encoder, decoder)`` the plugin should use (int8 encoder preferred), or None."""
        return mm.best_pair(self.entries)

    def use_pair(self) -> None:
        pair = self.selected_pair()
        if pair:
            self.modelsChanged.emit(*pair)

    def download_checkpoint(self) -> None:
        spec = mm.REGISTRY[self.spec_combo.currentData()]
        ckpt = spec.checkpoint
        if not ckpt.downloadable:
            raise SegmentationError(f"{spec.title}: no download with a known checksum; {ckpt.how}")
        dest = self.models_dir / ckpt.filename
        self._log(f"— Downloading {ckpt.url} to {dest}")
        self._set_busy(True, 1000)
        self._download = ModelDownload(ckpt.url, dest, ckpt.sha256, self)
        self._download.progress.connect(self._download_progress)
        self._download.finished.connect(guarded(self._download_done))
        self._download.start()

    def _download_progress(self, received: int, total: int) -> None:
        if total > 0:
            self.progress.setValue(int(1000 * received / total))

    def _download_done(self, ok: bool, message: str) -> None:
        self._download = None
        self._set_busy(False)
        self._log(f"Downloaded {message}; now press 'Export from checkpoint…'." if ok else message)
        if not ok and "cancelled" not in message:
            QMessageBox.warning(self, "Download", message)
        self.refresh_models()

    def export_checkpoint(self) -> None:
        ckpt, _ = QFileDialog.getOpenFileName(self, "SAM checkpoint", str(self.models_dir),
                                              "PyTorch checkpoints (*.pth *.pt)")
        if not ckpt:
            return
        model_type = mm.guess_model_type(ckpt)
        if model_type is None:
            keys = list(mm.REGISTRY)
            model_type, ok = QInputDialog.getItem(self, "SAM model type", "Model type of this checkpoint",
                                                  keys, 0, False)
            if not ok:
                return
        python = deps.find_python(sys.executable, sys.exec_prefix)
        found = deps.probe_modules(python, mm.EXPORT_MODULES) if python else {}
        absent = [m for m in mm.EXPORT_MODULES if not found.get(m)]
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
            found = deps.probe_modules(python, mm.EXPORT_MODULES) if python else {}
        if not python or not all(found.get(m) for m in mm.EXPORT_MODULES):
            text = mm.export_instructions(ckpt, model_type, self.models_dir)
            self._log(text)
            QMessageBox.information(self, "Export by hand", text)
            return
        self._run_export(python, ckpt, model_type)

    def _run_export(self, python: str, ckpt: str, model_type: str) -> None:
        out_dir = self.models_dir

        def job(on_line: Callable[[str], None], cancelled: Callable[[], bool]) -> List[Path]:
            return mm.run_export(python, ckpt, model_type, out_dir, on_line, cancelled)

        self._start(f"Exporting {os.path.basename(ckpt)}", job, self._made_models)

    def build_int8(self) -> None:
        reason = quantize.unavailable_reason()
        if reason:
            raise SegmentationError(reason)
        item = self.model_list.currentItem()
        enc = mm.fp32_encoder(self.entries, item.data(Qt.ItemDataRole.UserRole) if item else None)
        if enc is None:
            raise SegmentationError("no fp32 encoder to quantise: export or copy one into the models folder")
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

    def _made_models(self, paths: List[Path]) -> None:
        self._log("Written: " + ", ".join(str(p) for p in paths))
        self._select_after_refresh = True
        self.refresh_models()
