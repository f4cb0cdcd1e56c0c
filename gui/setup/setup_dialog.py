"""First-run setup: Python packages (installed on consent) and models (catalogue, own pairs, export).

The widget only calls core functions; every long job runs in a QgsTask (pip,
discovery, checks, export, quantisation) or through QGIS's network stack
(downloads), with progress and Cancel.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, List, Optional

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core import dependency_manager as deps
from ...core.deps import runtime_packages as rp
from ...core.errors import SegmentationError
from ...core.models import catalogue
from ...core.models import model_manager as mm
from ...core.models import model_pairs as mp
from ...core.models.catalogue_download import CatalogueDownload
from ...core.models.model_download import ModelDownload
from ...core.models.model_record import UserRecord, check_custom, profile_paths
from ...toolbelt.log import guarded
from ...toolbelt.models import search_folders
from ...toolbelt.settings import Settings
from .setup_advanced import AdvancedActions
from .setup_models import ModelsPanel
from .setup_packages import PackageActions
from .setup_task import Job, SetupTask

log = logging.getLogger("ai_segmentation")


class SetupDialog(AdvancedActions, PackageActions, QDialog):
    """Setup of packages and models.

    Args:
        parent: parent widget (the dock).
        models_dir: the models folder; downloads, exports and int8 encoders go there
            (default: ``<profile>/ai_segmentation/models``).
        profile_dir: QGIS profile folder; defaults to ``QgsApplication.qgisSettingsDirPath()``.
        machine: where to look for GPU drivers (default: this machine).

    Signals:
        modelsChanged(encoder, decoder): a usable pair was chosen or newly made.
        modelsDirChanged(folder): another models folder was chosen (it is saved in the settings).
        dependenciesInstalled(): packages were installed and put on ``sys.path``.
    """

    modelsChanged = pyqtSignal(str, str)  # noqa: N815 (Qt signal naming)
    modelsDirChanged = pyqtSignal(str)  # noqa: N815
    dependenciesInstalled = pyqtSignal()  # noqa: N815

    def __init__(self, parent: Optional[QWidget] = None, models_dir: Optional[str] = None,
                 profile_dir: Optional[str] = None, machine: Optional[rp.Machine] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("AI Segmentation setup")
        self.resize(860, 820)
        self.profile_dir = Path(profile_dir or QgsApplication.qgisSettingsDirPath())
        self.paths = profile_paths(self.profile_dir)
        self.models_dir = Path(models_dir or self.paths["models"])
        self.cache_path = self.paths["index"]
        self.catalogue = catalogue.shipped()
        self.deps_target = deps.deps_dir(self.profile_dir)
        self.machine = machine or rp.Machine.this()
        self.python = deps.find_python(sys.executable, sys.exec_prefix)  # None: the user is asked to choose
        self.entries: List[mm.ModelEntry] = []
        self.pairs: List[mp.ModelPair] = []
        self._task: Optional[SetupTask] = None
        self._download: Optional[Any] = None  # a ModelDownload or CatalogueDownload in progress
        self._select_after_refresh: Optional[str] = None  # pair key to emit once found ("files": the best)
        self._missing: List[deps.Requirement] = []
        self._build_ui()
        self.refresh_dependencies()
        self.refresh_models()

    # ---------------------------------------------------------------- layout

    def _build_ui(self) -> None:
        col = QVBoxLayout(self)
        col.addWidget(self._build_packages())

        self.panel = ModelsPanel(list(self.catalogue.checkpoints.values()))
        self.panel.connect_buttons({text: self._action(slot) for text, slot in (
            ("Choose folder…", self.choose_models_dir), ("Download", self.download_model),
            ("Add model…", self.add_model), ("Remove model", self.remove_model),
            ("Download checkpoint", self.download_checkpoint), ("Export from checkpoint…", self.export_checkpoint),
            ("Build fast int8 encoder", self.build_int8), ("Refresh", self.refresh_models),
            ("Use these models", self.use_pair),
        )})
        self.panel.catalogue.itemSelectionChanged.connect(self._show_choice)
        self.panel.custom_list.itemSelectionChanged.connect(self._show_choice)
        self.model_list, self.pair_label = self.panel.model_list, self.panel.pair_label
        col.addWidget(self.panel, 1)

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setMaximumHeight(140)
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
        self._set_packages_busy(busy)
        self.panel.set_busy(busy)

    def _log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def _start(self, title: str, job: Job, on_done: Callable[[Any], None]) -> None:
        """Run ``job`` in a QgsTask; ``on_done(result)`` runs on success, errors go to the log view."""
        self._log(f"— {title}")
        self._set_busy(True)
        task = SetupTask(title, job)
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

    # ---------------------------------------------------------------- models

    def folders(self) -> List[str]:
        return search_folders(str(self.models_dir))

    def record(self) -> UserRecord:
        return UserRecord(self.paths["record"])

    def choose_models_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Models folder", str(self.models_dir))
        if path:
            self.set_models_dir(path)

    def set_models_dir(self, path: str) -> None:
        """Use ``path`` as the models folder from now on (saved in the settings) and look in it."""
        try:
            Path(path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SegmentationError(f"cannot use '{path}' as the models folder: {exc}") from None
        self.models_dir = Path(path)
        replace(Settings.load(), models_dir=str(self.models_dir)).save()
        self._log(f"Models folder: {self.models_dir}")
        self.modelsDirChanged.emit(str(self.models_dir))
        self.refresh_models()

    def refresh_models(self) -> None:
        """Re-discover and check the model files (in a task; results are cached)."""
        folders, cache, record = self.folders(), self.cache_path, self.record()
        extra = mp.installed_files(self.models_dir, self.catalogue) + list(record.files())
        known = {**self.catalogue.known_sha256(), **record.known()}
        self.panel.show_folder(str(self.models_dir))

        def job(on_line: Callable[[str], None], cancelled: Callable[[], bool]) -> List[mm.ModelEntry]:
            return mm.discover(folders, cache, lambda i, n, p: on_line(f"checking {p}"), cancelled, extra, known)

        self._start("Looking for models", job, self._show_models)

    def _show_models(self, entries: List[mm.ModelEntry]) -> None:
        self.entries = entries
        self.pairs = mp.available_pairs(self.models_dir, entries, self.catalogue, self.record())
        self.panel.show_catalogue(mp.catalogue_rows(self.catalogue, self.pairs), self.panel.selected_catalogue())
        self.panel.show_custom([p for p in self.pairs if p.source == "custom"], self.panel.selected_custom())
        folders = {Path(d) for d in self.folders()}
        self.panel.show_files([e for e in entries if Path(e.path).parent in folders], self.folders())
        key, self._select_after_refresh = self._select_after_refresh, None
        chosen = next((p for p in self.pairs if p.key == key and p.ok), None)
        if chosen is not None:  # a new download, own model, int8 encoder or export is used at once
            self.modelsChanged.emit(chosen.encoder, chosen.decoder)
        self._show_choice()

    def selected_pair(self) -> Optional[mp.ModelPair]:
        """The pair chosen in the lists if it is usable, else the best one (int8 encoder preferred)."""
        keys = [f"catalogue:{self.panel.selected_catalogue()}", f"custom:{self.panel.selected_custom()}"]
        return next((p for p in self.pairs if p.key in keys and p.ok), None) or mp.best(self.pairs)

    def _show_choice(self) -> None:
        self.panel.show_pair(self.selected_pair())

    def use_pair(self) -> None:
        pair = self.selected_pair()
        if pair is None:
            raise SegmentationError("no usable encoder + decoder pair yet: download a ready-made model first")
        self._log(f"Using {pair.describe()}")
        self.modelsChanged.emit(pair.encoder, pair.decoder)

    def _watch(self, download: Any, done: Callable[[bool, str], None]) -> None:
        self._download = download
        self._set_busy(True, 1000)
        download.finished.connect(guarded(done))
        download.start()

    def _show_progress(self, received: int, total: int, share: float = 1.0, before: float = 0.0) -> None:
        if total > 0:
            self.progress.setValue(int(1000 * (before + share * received / total)))

    def download_model(self) -> None:
        """Download, check and install the catalogue model selected in the list."""
        model_id = self.panel.selected_catalogue()
        if model_id is None:
            raise SegmentationError("choose a model in the list of ready-made models first")
        model = self.catalogue.model(model_id)
        self._log(f"— Downloading {model.title} ({model.size_mb:.0f} MB) into {self.models_dir}")
        dl = CatalogueDownload(model, self.models_dir, self.paths["record"], self.cache_path, self)
        dl.progress.connect(lambda i, n, got, total: self._show_progress(got, total, 1 / n, i / n))
        self._watch(dl, lambda ok, message: self._model_downloaded(ok, message, dl))

    def _model_downloaded(self, ok: bool, message: str, dl: CatalogueDownload) -> None:
        self._download = None
        self._set_busy(False)
        self._log(message)
        if ok and dl.pair is not None:
            self._select_after_refresh = dl.pair.key
        elif "cancelled" not in message:
            QMessageBox.warning(self, "Download", message)
        self.refresh_models()

    def add_model(self) -> None:
        """Add an encoder + decoder pair under a name (checked by the engine first)."""
        name, ok = QInputDialog.getText(self, "Add a model", "Name of the model (e.g. 'SAM roofs, fine-tuned'):")
        if not ok:
            return
        onnx = "ONNX models (*.onnx)"
        encoder = QFileDialog.getOpenFileName(self, f"Encoder of '{name}'", str(self.models_dir), onnx)[0]
        decoder = encoder and QFileDialog.getOpenFileName(self, f"Decoder of '{name}'",
                                                          str(Path(encoder).parent), onnx)[0]
        if encoder and decoder:
            self.add_model_files(name, encoder, decoder)

    def add_model_files(self, name: str, encoder: str, decoder: str) -> None:
        """Check ``encoder`` + ``decoder`` in a task, then record them as ``name``."""
        if name.strip() in self.record().custom:
            raise SegmentationError(f"a model named '{name.strip()}' exists: remove it first, or choose another name")
        cache = mm.HashCache(self.cache_path)

        def job(on_line: Callable[[str], None], cancelled: Callable[[], bool]) -> Any:
            on_line(f"checking {encoder} and {decoder}")
            return check_custom(name, encoder, decoder, cache, cancelled)

        def added(model: Any) -> None:
            record = self.record()
            record.custom[model.name] = model
            record.save()
            self._log(f"Added '{model.name}' ({model.family})")
            self._select_after_refresh = f"custom:{model.name}"
            self.refresh_models()

        self._start(f"Adding '{name.strip()}'", job, added)

    def remove_model(self) -> None:
        name = self.panel.selected_custom()
        if name is None:
            raise SegmentationError("choose one of your own models in the list first")
        record = self.record()
        record.remove_custom(name)
        record.save()
        self._log(f"Removed '{name}' from the list (its files were left where they are)")
        self.refresh_models()

    def download_checkpoint(self) -> None:
        ckpt = self.catalogue.checkpoints[self.panel.spec_combo.currentData()]
        dest = self.models_dir / ckpt.name
        self._log(f"— Downloading {ckpt.url} to {dest}")
        dl = ModelDownload(ckpt.url, dest, ckpt.sha256, self)
        dl.progress.connect(self._show_progress)
        self._watch(dl, self._checkpoint_downloaded)

    def _checkpoint_downloaded(self, ok: bool, message: str) -> None:
        self._download = None
        self._set_busy(False)
        self._log(f"Downloaded {message}; now press 'Export from checkpoint…'." if ok else message)
        if not ok and "cancelled" not in message:
            QMessageBox.warning(self, "Download", message)
        self.refresh_models()
