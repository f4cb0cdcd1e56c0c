"""QgsTasks that encode crops in the background.

``run()`` touches no widget and no layer: :meth:`RasterSegmenter.encode` reads
through GDAL opened in the task's thread and writes cache entries atomically,
so cancelling (or a crash) never leaves a half-written entry. Cancelling also
terminates the encoder run in progress (``RunOptions.terminate``), so a cancel
takes effect within about a second rather than after the crop. Connect to the
task's ``taskCompleted`` / ``taskTerminated`` / ``progressChanged`` signals;
``error`` holds the user-facing message after a failure.
"""

from __future__ import annotations

import logging
import time
from typing import List, Optional

from qgis.core import QgsTask

from ..errors import SegmentationError
from ..families.onnx_session import CancelToken
from ..raster.crops import CropSpec
from .encode_estimate import format_duration
from .segmenter import RasterSegmenter

_LOG = logging.getLogger("ai_segmentation")


class ModelTask(QgsTask):
    """A cancellable QgsTask running model work (:meth:`work`, in the task's thread).

    :meth:`cancel` also stops an encoder run in progress (``token``, which the work passes to
    :meth:`RasterSegmenter.encode`). After it ends, ``error`` is the message for the user, None
    when it worked or was cancelled; an unexpected exception never takes QGIS down.
    """

    failure = "the task"  # what failed, in "<failure> failed: <exception>"

    def __init__(self, description: str) -> None:
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.error: Optional[str] = None
        self.token = CancelToken(self.isCanceled)  # what encode() polls, and what cancel() terminates

    def cancel(self) -> None:
        """Cancel the task and stop the encoder run in progress (from any thread)."""
        self.token.cancel()
        super().cancel()

    def run(self) -> bool:
        try:
            self.work()
        except SegmentationError as exc:
            self.error = None if self.isCanceled() else str(exc)
            return False
        except Exception as exc:  # a task must never take QGIS down; the message goes to the user
            _LOG.exception("%s failed", self.failure)
            self.error = f"{self.failure} failed: {type(exc).__name__}: {exc}"
            return False
        return not self.isCanceled()

    def work(self) -> None:
        raise NotImplementedError


class _EncodeTask(ModelTask):
    failure = "encoding"

    def __init__(self, description: str, segmenter: RasterSegmenter) -> None:
        super().__init__(description)
        self.segmenter = segmenter


class EncodeCropTask(_EncodeTask):
    """Encode the one crop a click needs (lazy encoding); decode when it completes."""

    def __init__(self, segmenter: RasterSegmenter, crop: CropSpec,
                 description: str = "AI Segmentation: encoding the clicked area") -> None:
        super().__init__(description, segmenter)
        self.crop = crop

    def work(self) -> None:
        self.setProgress(1.0)
        self.segmenter.encode(self.crop, self.token)
        self.setProgress(100.0)


class EncodeExtentTask(_EncodeTask):
    """"Encode Image": every crop of an extent, skipping cached ones, with progress and ETA.

    ``encoded``, ``skipped``, ``eta_seconds`` and :meth:`status_text` may be read
    from the GUI thread while it runs (on ``progressChanged``).
    """

    def __init__(self, segmenter: RasterSegmenter, crops: List[CropSpec],
                 description: str = "AI Segmentation: encoding the image") -> None:
        super().__init__(description, segmenter)
        self.crops = list(crops)
        self.encoded = 0
        self.skipped = 0
        self.remaining = len(self.crops)
        self.eta_seconds: Optional[float] = None
        self._seconds: List[float] = []

    def work(self) -> None:
        todo = [c for c in self.crops if not self.segmenter.is_encoded(c)]
        self.skipped, self.remaining = len(self.crops) - len(todo), len(todo)
        per_crop = self.segmenter.seconds_per_crop()
        self.eta_seconds = None if per_crop is None else per_crop * len(todo)
        for i, crop in enumerate(todo):
            if self.isCanceled():
                return
            start = time.perf_counter()
            self.segmenter.encode(crop, self.token)
            if not self.isCanceled() or self.segmenter.is_encoded(crop):  # a crop finished as cancel came is kept
                self.encoded, self.remaining = self.encoded + 1, self.remaining - 1
            if self.isCanceled():
                return
            self._seconds.append(time.perf_counter() - start)
            recent = self._seconds[-5:]  # recent crops: the first one also pays for loading the model
            self.eta_seconds = self.remaining * sum(recent) / len(recent)
            self.setProgress(100.0 * (i + 1) / len(todo))
        self.setProgress(100.0)

    def status_text(self) -> str:
        """E.g. ``"12 of 40 crops encoded, about 3 min left"``."""
        done = f"{self.encoded} of {self.encoded + self.remaining} crops encoded"
        if self.skipped:
            done += f" ({self.skipped} already cached)"
        if self.eta_seconds is None or not self.remaining:
            return done
        return f"{done}, about {format_duration(self.eta_seconds)} left"
