"""Where the models run, shown in the panel, and GPU memory given back when they sit idle."""

from __future__ import annotations

import logging
from typing import Callable, Optional

from qgis.PyQt.QtCore import QObject, QTimer

from ..core.families import providers as pv
from ..core.segment.segmenter import RasterSegmenter

log = logging.getLogger("ai_segmentation")

IDLE_RELEASE_MS = 60_000  # a GPU model unused this long gives its memory back (it reloads in ~1 s)


class RuntimeWatch(QObject):
    """Calls ``show(text, warning)`` with :func:`providers.describe` of the segmenter's models each
    time they are used (:meth:`touch`), and releases their GPU sessions after
    :data:`IDLE_RELEASE_MS` without use. CPU sessions are left alone (nothing to give back)."""

    def __init__(self, show: Callable[[str, bool], None], parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._show = show
        self._segmenter: Optional[RasterSegmenter] = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(IDLE_RELEASE_MS)
        self._timer.timeout.connect(self.release)

    def touch(self, segmenter: Optional[RasterSegmenter]) -> None:
        """The segmenter's models were just used (or loaded): show where they run, restart the clock."""
        if segmenter is not self._segmenter:
            self.release()
            self._segmenter = segmenter
        if segmenter is None:
            self._show("", False)
            return
        runs = segmenter.runs_on()
        self._show(*pv.describe(runs))
        if any(session.on_gpu for _, session in runs):
            self._timer.start()

    def release(self) -> None:
        """Give the GPU memory of the segmenter's models back now."""
        self._timer.stop()
        runs = self._segmenter.runs_on() if self._segmenter is not None else []
        if sum(session.release() for _, session in runs):  # every one: sum, not any
            log.info("AI Segmentation: the models were idle; their GPU memory was given back.")

    def stop(self) -> None:
        self.release()
        self._segmenter = None
