"""Runs the encoder QgsTasks and reports their progress; the encoder never runs in the GUI thread."""

from __future__ import annotations

import contextlib
from typing import List, Optional

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QObject, pyqtSignal

from ..core.crops import CropSpec
from ..core.encode_task import EncodeCropTask, EncodeExtentTask
from ..core.segmenter import RasterSegmenter, format_duration


def _alive(task: Optional[QgsTask]) -> bool:
    return task is not None and not sip.isdeleted(task)


class EncodeManager(QObject):
    """At most one "Encode Image" task and one click task at a time.

    Signals:
        progress(fraction, text): ``fraction`` in [0, 1], or -1 when unknown.
        idle(): no task runs any more.
        crop_done(ok, error): the crop a click needed is encoded (or failed: ``error``).
        extent_done(ok, error): "Encode Image" ended; ``ok`` False also when cancelled.
    """

    progress = pyqtSignal(float, str)
    idle = pyqtSignal()
    crop_done = pyqtSignal(bool, str)
    extent_done = pyqtSignal(bool, str)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._crop_task: Optional[EncodeCropTask] = None  # Python references keep run() alive
        self._extent_task: Optional[EncodeExtentTask] = None

    @property
    def busy(self) -> bool:
        return _alive(self._crop_task) or _alive(self._extent_task)

    def crop_pending(self, crop: CropSpec) -> bool:
        """True if a click task for ``crop`` is running."""
        return _alive(self._crop_task) and self._crop_task.crop == crop

    def encode_crop(self, segmenter: RasterSegmenter, crop: CropSpec) -> None:
        """Encode the crop a click needs; ``crop_done`` fires when it ends."""
        if self.crop_pending(crop):
            return
        if _alive(self._crop_task):
            self._crop_task.cancel()  # the user moved on to another part of the raster
        task = EncodeCropTask(segmenter, crop)
        task.taskCompleted.connect(lambda: self._crop_finished(task, True))
        task.taskTerminated.connect(lambda: self._crop_finished(task, False))
        self._crop_task = task
        per_crop = segmenter.seconds_per_crop()
        eta = f" (about {format_duration(per_crop)})" if per_crop is not None else ""
        self.progress.emit(-1.0, f"Encoding the clicked area{eta}…")
        QgsApplication.taskManager().addTask(task)

    def encode_extent(self, segmenter: RasterSegmenter, crops: List[CropSpec]) -> None:
        """"Encode Image" on ``crops``; ``extent_done`` fires when it ends."""
        if _alive(self._extent_task):
            return
        task = EncodeExtentTask(segmenter, crops)
        task.progressChanged.connect(lambda value: self._extent_progress(task, value))
        task.taskCompleted.connect(lambda: self._extent_finished(task, True))
        task.taskTerminated.connect(lambda: self._extent_finished(task, False))
        self._extent_task = task
        self.progress.emit(0.0, f"Encoding {len(crops)} crops…")
        QgsApplication.taskManager().addTask(task)

    def cancel(self) -> None:
        """Cancel every running task (the crop being encoded finishes first, then nothing is written)."""
        for task in (self._crop_task, self._extent_task):
            if _alive(task):
                task.cancel()

    def shutdown(self) -> None:
        """Cancel and forget the tasks; no signal of theirs reaches this object afterwards."""
        for task in (self._crop_task, self._extent_task):
            if _alive(task):
                for signal in (task.taskCompleted, task.taskTerminated, task.progressChanged):
                    with contextlib.suppress(TypeError):  # nothing connected
                        signal.disconnect()
                task.cancel()
        self._crop_task = self._extent_task = None

    def _extent_progress(self, task: EncodeExtentTask, value: float) -> None:
        if task is self._extent_task:
            self.progress.emit(value / 100.0, task.status_text())

    def _crop_finished(self, task: EncodeCropTask, ok: bool) -> None:
        if task is not self._crop_task:
            return  # replaced by a newer click's task
        self._crop_task = None
        error = "" if ok else (task.error or "")
        self.crop_done.emit(ok, error)
        self._maybe_idle()

    def _extent_finished(self, task: EncodeExtentTask, ok: bool) -> None:
        if task is not self._extent_task:
            return
        self._extent_task = None
        if ok:
            message = task.status_text()
        elif task.error:
            message = task.error
        else:
            message = f"Encoding cancelled; {task.encoded} crops were encoded and are kept in the cache."
        self.extent_done.emit(ok, message)
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self.busy:
            self.idle.emit()
