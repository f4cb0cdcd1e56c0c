"""Downloading and installing one catalogue model (QGIS adapter over :mod:`.model_install`).

The files are fetched one after the other into the staging folder, each
checked by SHA256; then a QgsTask runs the engine's signature check and moves
the pair into place (opening a large encoder takes seconds: never in the GUI
thread). The pair is offered only once all of that has passed.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .. import fs_checks as fs
from ..errors import ModelError, SegmentationError
from . import model_install as mi
from .catalogue import CatalogueModel, family_title
from .model_download import MODELS_FOLDER, ModelDownload
from .model_manager import runs
from .model_pairs import ModelPair
from .model_record import UserRecord

log = logging.getLogger("ai_segmentation")


class CatalogueDownload(QObject):
    """Download and install ``model`` into ``models_dir``; call :meth:`start`, wait for :attr:`finished`.

    Args:
        record_path: the user's record (checksums are recorded there).
        cache_path: the checksum cache, updated with the installed files.

    Signals:
        progress(index, count, received, total): file ``index`` of ``count``, its bytes so far and in
            all (-1: unknown).
        finished(ok, message): the installed pair's description, or why nothing was installed.

    After success, :attr:`pair` is the installed :class:`ModelPair`.
    """

    progress = pyqtSignal(int, int, "qint64", "qint64")
    finished = pyqtSignal(bool, str)

    def __init__(self, model: CatalogueModel, models_dir: os.PathLike, record_path: os.PathLike,
                 cache_path: Optional[os.PathLike] = None, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.model, self.models_dir = model, models_dir
        self.record_path, self.cache_path = record_path, cache_path
        self.staging = mi.staging_dir(models_dir, model)
        self.pair: Optional[ModelPair] = None
        self._download: Optional[ModelDownload] = None
        self._task: Optional[QgsTask] = None
        self._index = 0
        self._cancelled = False

    def start(self) -> None:
        if not runs(self.model.family):
            self.finished.emit(False, f"{self.model.title} is a {family_title(self.model.family)} model, which "
                               "this version of the plugin cannot run: nothing was downloaded.")
            return
        try:
            fs.check_folder(os.fspath(self.models_dir), MODELS_FOLDER, create=True, error=ModelError)
            self.staging.mkdir(exist_ok=True)
        except ModelError as exc:
            self.finished.emit(False, str(exc))
            return
        except OSError as exc:
            self.finished.emit(False, str(fs.os_error(exc, "create", "download folder", str(self.staging),
                                                      error=ModelError)))
            return
        self._next(0)

    def cancel(self) -> None:
        """Stop; what was downloaded for this model is deleted."""
        self._cancelled = True
        if self._download is not None:
            self._download.cancel()
        elif self._task is None:
            mi.discard(self.staging)

    def _next(self, index: int) -> None:
        self._index = index
        files = self.model.files
        while self._index < len(files) and mi.already_verified(self.staging, files[self._index]):
            log.info("%s already downloaded and checked", files[self._index].name)
            self._index += 1
        if self._index == len(files):
            self._install()
            return
        f = files[self._index]
        self._download = ModelDownload(f.url, self.staging / f.name, f.sha256, self)
        self._download.progress.connect(lambda got, total: self.progress.emit(self._index, len(files), got, total))
        self._download.finished.connect(self._file_done)
        self._download.start()

    def _file_done(self, ok: bool, message: str) -> None:
        download, self._download = self._download, None
        f = self.model.files[self._index]
        if self._cancelled:
            mi.discard(self.staging)
            self.finished.emit(False, f"download of {self.model.title} cancelled; its files were deleted")
        elif not ok or download is None:
            self.finished.emit(False, f"{self.model.title}: {message} Nothing was installed.")
        else:
            mi.mark_verified(self.staging, f, download.sha256 or "", download.checked_by or "")
            self._next(self._index + 1)

    def _install(self) -> None:
        model, models_dir, record_path, cache_path = self.model, self.models_dir, self.record_path, self.cache_path

        def work(_task: QgsTask) -> ModelPair:
            return mi.finalize(model, models_dir, UserRecord(record_path), cache_path)

        def done(exception: Optional[BaseException], result: Any = None) -> None:
            self._task = None
            if isinstance(exception, SegmentationError):
                self.finished.emit(False, str(exception))
            elif exception is not None:
                log.error("installing %s failed", model.title, exc_info=exception)
                self.finished.emit(False, f"installing {model.title} failed: {type(exception).__name__}: "
                                   f"{exception}")
            else:
                self.pair = result
                self.finished.emit(True, f"{model.title} installed: {result.describe()}")

        self._task = QgsTask.fromFunction(f"AI Segmentation: checking {model.title}", work, on_finished=done)
        QgsApplication.taskManager().addTask(self._task)
