"""The setup dialog's background job: one QgsTask that reports lines and a result through signals."""

from __future__ import annotations

import logging
from typing import Any, Callable

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ...core.errors import SegmentationError

log = logging.getLogger("ai_segmentation")
Job = Callable[[Callable[[str], None], Callable[[], bool]], Any]  # job(on_line, cancelled) -> result


class SetupTask(QgsTask):
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
