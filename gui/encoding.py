"""Runs the encoder QgsTasks and reports their progress; the encoder never runs in the GUI thread."""

from __future__ import annotations

import contextlib
from typing import List, Optional

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QObject, pyqtSignal

from ..core.raster.crops import CropSpec
from ..core.segment.encode_estimate import format_duration
from ..core.segment.encode_task import EncodeCropTask, EncodeExtentTask
from ..core.segment.segmenter import RasterSegmenter
from .text import plural


def _alive(task: Optional[QgsTask]) -> bool:
    return task is not None and not sip.isdeleted(task)


def eta_text(segmenter: RasterSegmenter) -> str:
    """``" (about 7 s)"`` from earlier encodes with this encoder, or ``""``."""
    per_crop = segmenter.seconds_per_crop()
    return f" (about {format_duration(per_crop)})" if per_crop is not None else ""


class EncodeManager(QObject):
    """At most one "Encode Image" task and one click task at a time.

    Signals:
        progress(fraction, text): ``fraction`` in [0, 1], or -1 when unknown.
        idle(): no task runs any more.
        cancelling(): a cancel was asked; the tasks stop after the crop being encoded.
        crop_done(crop, ok, error): the crop a click needed is encoded (or failed: ``error``;
            ``ok`` False and no error when cancelled).
        extent_done(ok, message): "Encode Image" ended; ``ok`` False also when cancelled.
    """

    progress = pyqtSignal(float, str)
    idle = pyqtSignal()
    cancelling = pyqtSignal()
    crop_done = pyqtSignal(object, bool, str)
    extent_done = pyqtSignal(bool, str)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._crop_task: Optional[EncodeCropTask] = None  # Python references keep run() alive
        self._extent_task: Optional[EncodeExtentTask] = None
        self._cancelling = False

    @property
    def busy(self) -> bool:
        return _alive(self._crop_task) or _alive(self._extent_task)

    @property
    def extent_busy(self) -> bool:
        """True while "Encode Image" runs."""
        return _alive(self._extent_task)

    def crop_pending(self, crop: CropSpec) -> bool:
        """True if a click task for ``crop`` is running."""
        return _alive(self._crop_task) and self._crop_task.crop == crop

    def encode_crop(self, segmenter: RasterSegmenter, crop: CropSpec, text: str = "") -> None:
        """Encode the crop a click needs; ``crop_done`` fires when it ends.

        ``text`` is shown with the progress (default: "Encoding the clicked area (about 7 s)…").
        A click task for another crop is cancelled: the user moved on.
        """
        if self.crop_pending(crop):
            return
        self.cancel_crop()
        task = EncodeCropTask(segmenter, crop)
        task.taskCompleted.connect(lambda: self._crop_finished(task, True))
        task.taskTerminated.connect(lambda: self._crop_finished(task, False))
        self._crop_task = task
        self._cancelling = False
        self.progress.emit(-1.0, text or f"Encoding the clicked area{eta_text(segmenter)}…")
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
        self._cancelling = False
        self.progress.emit(0.0, f"Encoding {plural(len(crops), 'crop')}…")
        QgsApplication.taskManager().addTask(task)

    def cancel_crop(self) -> None:
        """Cancel the click task, if any (a new click or Esc: its result is no longer wanted)."""
        task, self._crop_task = self._crop_task, None
        if _alive(task):
            task.cancel()
            self._maybe_idle()

    def cancel(self) -> None:
        """Cancel every running task ("Cancel" in the panel); says "Cancelling…" until they end."""
        tasks = [t for t in (self._crop_task, self._extent_task) if _alive(t)]
        if not tasks:
            return
        self._cancelling = True
        self.cancelling.emit()
        for task in tasks:
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
        if task is self._extent_task and not self._cancelling:
            self.progress.emit(value / 100.0, task.status_text())

    def _crop_finished(self, task: EncodeCropTask, ok: bool) -> None:
        if task is not self._crop_task:
            return  # replaced by a newer click's task
        self._crop_task = None
        error = "" if ok else (task.error or "")
        self.crop_done.emit(task.crop, ok, error)
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
            one = task.encoded == 1
            message = (f"Encoding cancelled; {plural(task.encoded, 'crop')} {'was' if one else 'were'} encoded "
                       f"and {'is' if one else 'are'} kept in the cache.")
        self.extent_done.emit(ok, message)
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self.busy:
            self._cancelling = False
            self.idle.emit()
