"""The steps of one prompt set's segmentation, run off the GUI thread: first mask at once, then
refinements on re-centred or coarser crops, each possibly after an encode, bounded and cancellable.

Everything here runs in the GUI thread and only submits work: decodes go to the
:class:`DecodeWorker`, encodes to the :class:`EncodeManager`'s QgsTasks. A new
prompt set or :meth:`SegmentFlow.cancel` (Esc) makes every pending outcome stale.
"""

from __future__ import annotations

from typing import Optional

from qgis.PyQt.QtCore import QObject, pyqtSignal

from ...core.errors import SegmentationError
from ...core.raster.crops import CropSpec
from ...core.segment.segmenter import MAX_RECENTRES, MapPrompt, RasterSegmenter, Segmentation
from ..encoding import EncodeManager, eta_text
from .decode_worker import CLICK, HOVER, DecodeJob, DecodeOutcome, DecodeWorker

MAX_EXTRA_ENCODES = 2  # encodes of re-centred crops per prompt set, beyond the crop clicked
CUT_NOTICE = ("The mask may be cut at a crop edge: {why}. 'Encode Image' on this area prepares the "
              "crops that clicks on large objects need.")


class SegmentFlow(QObject):
    """Runs the decode and encode steps of the current prompt set; the latest prompt set wins.

    Signals:
        result(seg, index, image, final): a mask for the current prompts; ``final`` False while
            a refinement follows (the preview is then drawn amber).
        hover_result(seg, index, image): a hover preview (cached crops only).
        hover_missed(): the hover position has no cached crop (or is off the raster).
        status(text): what runs now ("Refining…", "Encoding the clicked area…"), "" when idle;
            after a refinement that had to stop, why.
        failed(exception): a step failed (the message is for the user).
    """

    result = pyqtSignal(object, int, object, bool)
    hover_result = pyqtSignal(object, int, object)
    hover_missed = pyqtSignal()
    status = pyqtSignal(str)
    failed = pyqtSignal(object)

    def __init__(self, encoder: EncodeManager, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.encoder = encoder
        self.worker = DecodeWorker(self)
        self.worker.done.connect(self._on_done)
        encoder.crop_done.connect(self._on_crop_done)
        self._generation = 0
        self._hover_generation = 0
        self._job: Optional[DecodeJob] = None  # the click step being decoded or waiting for its crop
        self._waiting: Optional[CropSpec] = None  # the crop that step waits for
        self._index: Optional[int] = None  # the candidate the user follows
        self._extra_encodes = 0

    @property
    def busy(self) -> bool:
        """True while a click's steps run (decoding, encoding or refining)."""
        return self._job is not None

    @property
    def extra_encodes(self) -> int:
        """Encodes of re-centred crops made for the current prompt set."""
        return self._extra_encodes

    def start(self, segmenter: RasterSegmenter, prompt: MapPrompt, previous: Optional[Segmentation],
              multimask: bool) -> None:
        """Segment a new prompt set (a click, a box, an undo to an unsegmented state)."""
        self._generation += 1
        self._hover_generation += 1
        self._index, self._extra_encodes, self._waiting = None, 0, None
        step = segmenter.first_step(prompt, previous)
        self._submit(DecodeJob(CLICK, self._generation, segmenter, prompt, step, multimask,
                               seen=frozenset({step.crop}), allow_encode=MAX_EXTRA_ENCODES > 0))

    def follow(self, index: int) -> None:
        """The user picked candidate ``index``: refinements follow it."""
        self._index = index

    def cancel(self) -> None:
        """Drop every pending step (Esc, a new raster, the tool switched off); stops a click's encode."""
        self._generation += 1
        self._hover_generation += 1
        self._job, self._waiting = None, None
        self.worker.discard()
        self.encoder.cancel_crop()
        self.status.emit("")

    def hover(self, segmenter: RasterSegmenter, prompt: MapPrompt, multimask: bool) -> None:
        """Preview ``prompt`` from cached crops (ignored while a click's steps run)."""
        if self.busy:
            return
        self._hover_generation += 1
        step = segmenter.first_step(prompt)
        self.worker.submit(DecodeJob(HOVER, self._hover_generation, segmenter, prompt, step, multimask,
                                     refine=False, allow_encode=False))

    def shutdown(self) -> None:
        self.cancel()
        self.worker.shutdown()

    # --- steps ---

    def _submit(self, job: DecodeJob) -> None:
        self._job = job
        self.worker.submit(job)

    def _on_done(self, outcome: DecodeOutcome) -> None:
        job = outcome.job
        if job.kind == HOVER:
            if job.generation == self._hover_generation and not self.busy:
                if outcome.seg is None:
                    self.hover_missed.emit()
                else:
                    self.hover_result.emit(outcome.seg, outcome.index, outcome.image)
            return
        if job is not self._job:
            return  # a stale step: the prompts changed or Esc was pressed
        if outcome.missing is not None:
            self._encode_then_decode(job, outcome.missing)
        elif outcome.error is not None:
            self._job = None
            self.status.emit("")
            self.failed.emit(outcome.error)
        else:
            self._decoded(job, outcome)

    def _decoded(self, job: DecodeJob, outcome: DecodeOutcome) -> None:
        if self._waiting is None:
            self.encoder.cancel_crop()  # an earlier click's encode, no longer needed
        nxt = outcome.next_step
        final = nxt is None
        self.result.emit(outcome.seg, outcome.index, outcome.image, final)
        if final:
            self._job = None
            why = ""
            if outcome.cut and job.step_no >= MAX_RECENTRES:
                why = f"{MAX_RECENTRES} refinements is the most a click makes"
            elif outcome.cut and self._extra_encodes >= MAX_EXTRA_ENCODES:
                why = f"{MAX_EXTRA_ENCODES} extra encodes is the most a click makes"
            elif outcome.cut:
                why = "no larger crop holds it"
            self.status.emit(CUT_NOTICE.format(why=why) if why else "")
            return
        step_no = job.step_no + 1
        extra = self._extra_encodes + (0 if outcome.next_cached else 1)
        nxt_job = DecodeJob(CLICK, job.generation, job.segmenter, job.prompt, nxt, job.multimask,
                            index=self._index if self._index is not None else outcome.index, step_no=step_no,
                            seen=job.seen | {nxt.crop}, refine=step_no < MAX_RECENTRES,
                            allow_encode=extra < MAX_EXTRA_ENCODES)
        what = "a coarser crop" if nxt.crop.scale > outcome.seg.crop.scale else "a re-centred crop"
        if outcome.next_cached:
            self.status.emit(f"Refining on {what} (step {step_no} of at most {MAX_RECENTRES})…")
            self._submit(nxt_job)
            return
        self._extra_encodes = extra
        text = (f"Refining: encoding {what}{eta_text(job.segmenter)}, extra encode {extra} of at most "
                f"{MAX_EXTRA_ENCODES} for this click…")
        self.status.emit(text)
        self._encode_then_decode(nxt_job, nxt.crop, text)

    def _encode_then_decode(self, job: DecodeJob, crop: CropSpec, text: str = "") -> None:
        """Encode ``crop`` in a QgsTask (``text`` shown with its progress), then decode ``job``."""
        self._job, self._waiting = job, crop
        self.encoder.encode_crop(job.segmenter, crop, text)

    def _on_crop_done(self, crop: CropSpec, ok: bool, error: str) -> None:
        job = self._job
        if job is None or crop != self._waiting:
            return
        self._waiting = None
        if ok:
            self._submit(job)
            return
        self._job = None
        self.status.emit("")
        if error:
            self.failed.emit(SegmentationError(error))
