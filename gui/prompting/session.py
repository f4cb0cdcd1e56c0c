"""The object being segmented: its prompts with undo, its masks, and what the canvas shows of them.

Runs in the GUI thread and never waits on a model: each prompt change hands the
decode to :class:`SegmentFlow` (a worker thread) and returns, so the marker is
drawn at once; masks arrive through the flow's signals, the latest prompt set
winning. Prompts live in the raster CRS.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Optional

from qgis.core import QgsCoordinateReferenceSystem
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QObject

from ...ai_segmentation_dockwidget import AISegmentationDock
from ...core.errors import SegmentationError
from ...core.raster.qgis_raster import extent_to_raster_crs, points_to_raster_crs
from ...core.segment.segmenter import MapPrompt, RasterSegmenter
from ...toolbelt import log
from ...toolbelt.log import guarded
from ..canvas_items import MaskOverlay, PromptMarkers
from ..encoding import EncodeManager
from .prompts import INCLUDE, PromptHistory
from .results import Result, to_map_prompt
from .segment_flow import SegmentFlow


class PromptSession(QObject):
    """Prompts -> masks -> canvas items and the dock's candidate and status lines.

    Args:
        canvas, dock: where prompts come from and results are shown.
        encoder: runs the encodes a click needs.
        segmenter: returns the segmenter of the chosen raster (raises a SegmentationError if none).
        raster_crs: returns the raster's CRS.
    """

    def __init__(self, canvas: QgsMapCanvas, dock: AISegmentationDock, encoder: EncodeManager,
                 segmenter: Callable[[], RasterSegmenter],
                 raster_crs: Callable[[], QgsCoordinateReferenceSystem], parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.canvas, self.dock, self.encoder = canvas, dock, encoder
        self._segmenter, self._raster_crs = segmenter, raster_crs
        self.history = PromptHistory()
        self.markers = PromptMarkers(canvas)
        self.overlay = MaskOverlay(canvas)
        self.flow = SegmentFlow(encoder, self)
        self.hover_enabled = False
        self._hovering = False  # the overlay shows a hover preview, not the current result
        self.flow.result.connect(self._on_result)
        self.flow.hover_result.connect(self._on_hover_result)
        self.flow.hover_missed.connect(self._on_hover_missed)
        self.flow.status.connect(dock.set_segment_status)
        self.flow.failed.connect(lambda exc: log.report_exception(exc, "Segmenting"))
        canvas.destinationCrsChanged.connect(self.show_prompts)

    # --- prompts in ---

    def _to_raster(self, points: list) -> tuple:
        segmenter = self._segmenter()
        return segmenter, points_to_raster_crs(points, self.canvas.mapSettings().destinationCrs(),
                                               segmenter.source)

    @guarded
    def add_point(self, x: float, y: float, label: int) -> None:
        """A click at ``(x, y)`` in the canvas CRS: 1 include, 0 exclude."""
        segmenter, ((rx, ry),) = self._to_raster([(x, y)])
        segmenter.crop_for(MapPrompt(points=((rx, ry),), labels=(INCLUDE,)))  # raises when outside
        self.history.add_point(rx, ry, label)
        self._prompts_changed()

    @guarded
    def set_box(self, xmin: float, ymin: float, xmax: float, ymax: float) -> None:
        segmenter = self._segmenter()
        box = extent_to_raster_crs((xmin, ymin, xmax, ymax), self.canvas.mapSettings().destinationCrs(),
                                   segmenter.source)
        segmenter.crop_for(MapPrompt(box=box))  # raises when the box misses the raster
        self.history.set_box(box)
        self._prompts_changed()

    @guarded
    def undo(self) -> None:
        if self.history.undo():
            self._prompts_changed()

    @guarded
    def clear(self) -> None:
        """Esc / Clear: forget the prompts, stop pending work, remove every preview."""
        self.history.clear()
        self._hovering = False
        self._prompts_changed()

    def _prompts_changed(self) -> None:
        self.show_prompts()
        prompts = self.history.current
        if prompts.is_empty or self.history.result is not None:
            self.flow.cancel()
            self._show(self.history.result)
            return
        previous = self.history.previous_result
        self.flow.start(self._segmenter(), to_map_prompt(prompts), previous.chosen_only() if previous else None,
                        prompts.wants_candidates)
        self._update_buttons()

    def show_prompts(self) -> None:
        current = self.history.current
        self.markers.show(current, self._raster_crs())
        self.dock.set_prompt_summary(*current.counts, current.box is not None)
        self._update_buttons()

    # --- masks out ---

    def _on_result(self, seg: Any, index: int, image: Any, final: bool) -> None:
        self.history.result = Result(seg, index)
        self._hovering = False
        self._show(self.history.result, image)

    def _show(self, result: Optional[Result], image: Any = None) -> None:
        if result is None:
            self.overlay.clear()
            self.dock.set_candidates(())
        else:
            self.overlay.set_mask(result.mask, result.seg.geotransform, self._raster_crs(), image)
            self.dock.set_candidates([float(s) for s in result.seg.scores], result.index)
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.dock.set_can_save(self.history.result is not None)
        self.dock.set_can_clear(not self.history.current.is_empty or self.overlay.has_mask or self.flow.busy)

    @guarded
    def choose_mask(self, index: int) -> None:
        result = self.history.result
        if result is not None and 0 <= index < len(result.seg.scores):
            result.index = index
            self.flow.follow(index)
            self._show(result)

    def step_mask(self, step: int) -> None:
        """Tab / Shift+Tab: the next or previous candidate mask."""
        result = self.history.result
        if result is not None:
            self.choose_mask((result.index + step) % len(result.seg.scores))

    # --- hover ---

    @guarded
    def on_hover(self, x: float, y: float) -> None:
        """Preview the mask the cursor position would add, from cached crops only."""
        if not self.hover_enabled or self.encoder.busy or self.flow.busy:
            return
        try:
            segmenter, ((rx, ry),) = self._to_raster([(x, y)])
            prompts = self.history.current.with_point(rx, ry, INCLUDE)
            self.flow.hover(segmenter, to_map_prompt(prompts), prompts.wants_candidates)
        except SegmentationError:
            self._on_hover_missed()  # off the raster: no hover preview

    def _on_hover_result(self, seg: Any, index: int, image: Any) -> None:
        self._hovering = True
        self.overlay.set_mask(seg.masks[index], seg.geotransform, self._raster_crs(), image)
        self._update_buttons()

    def _on_hover_missed(self) -> None:
        if self._hovering:
            self._hovering = False
            self._show(self.history.result)

    # --- lifecycle ---

    def end(self) -> None:
        """The map tool was switched off: the object is dropped, as QGIS's digitizing tools do."""
        self.clear()

    def shutdown(self) -> None:
        self.flow.shutdown()
        with contextlib.suppress(TypeError):  # already disconnected
            self.canvas.destinationCrsChanged.disconnect(self.show_prompts)
        self.markers.clear()
        self.overlay.dispose()
