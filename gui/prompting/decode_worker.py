"""Decoding off the GUI thread: one worker thread, the latest job wins.

The GUI thread submits a :class:`DecodeJob` and returns at once. The worker
thread reads the crop's cached embedding, runs the decoder (ONNX Runtime
releases the GIL while it runs), works out the next refinement step and draws
the preview image, then emits :attr:`DecodeWorker.done`: a queued signal, so
its slots run in the GUI thread. A job submitted while another one waits
replaces it; the job already running finishes, and the GUI drops its outcome
by its generation. The worker touches no widget and no layer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import FrozenSet, Optional

from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtGui import QImage

from ...core.raster.crops import CropSpec, touches_interior_edge
from ...core.segment.segmenter import MapPrompt, NotEncodedError, RasterSegmenter, Segmentation, Step
from ..canvas_items import MASK_COLOR, REFINING_COLOR, mask_image

CLICK, HOVER = "click", "hover"


@dataclass(frozen=True)
class DecodeJob:
    """One decode step of one prompt set.

    Attributes:
        kind: :data:`CLICK` (may be refined) or :data:`HOVER` (first step only, cached crops only).
        generation: the submitter's counter when it was made; outcomes of old generations are dropped.
        step: the crop to decode on, with the logits being refined.
        multimask: three candidate masks, else one.
        index: the candidate mask followed (None: the best).
        step_no: 0 for the first decode; refinements count up.
        seen: crops already decoded on for this prompt set (never proposed again).
        refine: whether to propose the next refinement step.
        allow_encode: whether that step may need an encode.
    """

    kind: str
    generation: int
    segmenter: RasterSegmenter
    prompt: MapPrompt
    step: Step
    multimask: bool = True
    index: Optional[int] = None
    step_no: int = 0
    seen: FrozenSet[CropSpec] = field(default_factory=frozenset)
    refine: bool = True
    allow_encode: bool = True


@dataclass
class DecodeOutcome:
    """What the worker made of a job.

    Attributes:
        seg: the masks, or None when the crop was missing or decoding failed.
        index: the candidate shown (``job.index`` or the best).
        image: preview of mask ``index`` (:func:`canvas_items.mask_image`), amber while refining.
        next_step: the refinement to run next, or None when the mask is whole (or no crop helps).
        next_cached: whether ``next_step``'s crop is encoded already.
        cut: the mask still touches a crop edge but no further step was allowed or found.
        missing: the job's crop is not encoded.
        error: the exception that stopped the job.
        seconds: time the worker spent on the job.
    """

    job: DecodeJob
    seg: Optional[Segmentation] = None
    index: int = 0
    image: Optional[QImage] = None
    next_step: Optional[Step] = None
    next_cached: bool = False
    cut: bool = False
    missing: Optional[CropSpec] = None
    error: Optional[BaseException] = None
    seconds: float = 0.0


def run_job(job: DecodeJob) -> DecodeOutcome:
    """Decode ``job`` (in any thread; touches no widget, reads only the cache and the decoder)."""
    start = time.perf_counter()
    segmenter = job.segmenter
    try:
        seg = segmenter.decode_step(job.step, job.prompt, job.multimask)
        index = job.index if job.index is not None and job.index < len(seg.scores) else seg.best
        nxt = segmenter.refinement(seg, job.prompt, index, job.seen, job.allow_encode) if job.refine else None
        cut = nxt is None and job.kind == CLICK and touches_interior_edge(
            seg.masks[index], segmenter.grid.interior_edges(seg.crop))
        image = mask_image(seg.masks[index], REFINING_COLOR if nxt is not None else MASK_COLOR)
        cached = nxt is not None and segmenter.is_encoded(nxt.crop)
    except NotEncodedError as exc:
        return DecodeOutcome(job, missing=exc.crop, seconds=time.perf_counter() - start)
    except Exception as exc:  # reported in the GUI thread (traceback kept); the worker must never die
        return DecodeOutcome(job, error=exc, seconds=time.perf_counter() - start)
    return DecodeOutcome(job, seg, index, image, nxt, cached, cut, seconds=time.perf_counter() - start)


class DecodeWorker(QObject):
    """A worker thread running :func:`run_job`; at most one job waits, the newest.

    Signals:
        done(DecodeOutcome): emitted from the worker thread, delivered in the GUI thread.
    """

    done = pyqtSignal(object)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._cond = threading.Condition()
        self._job: Optional[DecodeJob] = None
        self._running: Optional[DecodeJob] = None
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="ai-segmentation-decode", daemon=True)
        self._thread.start()

    def submit(self, job: DecodeJob) -> bool:
        """Queue ``job`` in place of any waiting job; a hover job never replaces a click job.

        Returns False when the job was not queued (a click job waits, or the worker stopped).
        """
        with self._cond:
            if self._stop or (job.kind == HOVER and self._job is not None and self._job.kind == CLICK):
                return False
            self._job = job
            self._cond.notify()
            return True

    def discard(self) -> None:
        """Drop the waiting job (the running one finishes; its outcome is the caller's to ignore)."""
        with self._cond:
            self._job = None

    @property
    def idle(self) -> bool:
        """True when no job waits or runs."""
        with self._cond:
            return self._job is None and self._running is None

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the thread after the job it runs (one decode); no signal comes afterwards."""
        with self._cond:
            self._stop, self._job = True, None
            self._cond.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job, self._job = self._job, None
                self._running = job
            outcome = run_job(job)
            with self._cond:
                self._running = None
                if self._stop:
                    return
            self.done.emit(outcome)
