"""The segmentation session: dock requests and map tool prompts -> segmenter, preview, saved objects.

Everything here runs in the GUI thread and stays short: decoding a click takes
tens of milliseconds; the encoder only runs in QgsTasks (:mod:`.encoding`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Optional

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsTask
from qgis.PyQt.QtCore import QObject

from ..ai_segmentation_dockwidget import AISegmentationDock
from ..ai_segmentation_maptool import SegmentationMapTool
from ..core.embedding_cache import EmbeddingCache
from ..core.errors import ModelError, SegmentationError
from ..core.output_store import ObjectAttributes
from ..core.polygon_exporter import mask_to_polygons
from ..core.qgis_raster import extent_to_raster_crs, points_to_raster_crs, source_from_layer
from ..core.segmenter import MapPrompt, NotEncodedError, RasterSegmenter
from ..toolbelt import log
from ..toolbelt.log import guarded
from ..toolbelt.models import ModelFiles, find_models
from ..toolbelt.settings import Settings
from .canvas_items import MaskOverlay, PromptMarkers
from .encoding import EncodeManager
from .output import OutputManager
from .params import SCOPE_VISIBLE, EncodeRequest
from .prompts import INCLUDE, PromptHistory
from .results import Result, to_map_prompt

MODELS_HELP = "models/README.md"


class SegmentationController(QObject):
    """Owns the prompts, the segmenter of the chosen raster, the canvas items and the tasks."""

    def __init__(self, iface: Any, dock: AISegmentationDock, settings: Settings,
                 open_setup: Optional[Callable[[], None]] = None) -> None:
        super().__init__(dock)
        self.iface, self.dock, self.canvas = iface, dock, iface.mapCanvas()
        self.settings = settings
        self._open_setup = open_setup
        self.tool = SegmentationMapTool(self.canvas)
        self.markers = PromptMarkers(self.canvas)
        self.overlay = MaskOverlay(self.canvas)
        self.history = PromptHistory()
        self.encoder = EncodeManager(self)
        self.output = OutputManager()
        self.models: ModelFiles = find_models(settings.models_dir, settings.encoder_path, settings.decoder_path)
        self._cache = EmbeddingCache(settings.cache_dir or None, settings.cache_max_bytes)
        self._segmenter: Optional[RasterSegmenter] = None
        self._segmenter_key: Optional[tuple] = None
        self._prepare: Optional[QgsTask] = None  # referenced while it runs
        self._prepared: Optional[RasterSegmenter] = None  # segmenter whose encoder hash is known
        self._closed = False
        self._connect()
        self.apply_settings(settings)

    def _connect(self) -> None:
        d, t = self.dock, self.tool
        d.source_changed.connect(self.on_source_changed)
        d.encode_requested.connect(self.on_encode_requested)
        d.scope_changed.connect(self.on_scope_changed)
        d.cancel_requested.connect(self.encoder.cancel)
        d.segment_toggled.connect(self.on_segment_toggled)
        d.save_requested.connect(self.save)
        d.undo_requested.connect(self.undo)
        d.clear_requested.connect(self.clear)
        d.mask_chosen.connect(self.choose_mask)
        d.output_changed.connect(self.on_output_changed)
        d.export_requested.connect(self.on_export_requested)
        d.setup_requested.connect(self.on_setup_requested)
        t.point_clicked.connect(self.add_point)
        t.box_drawn.connect(self.set_box)
        t.hovered.connect(self.on_hover)
        t.command_key.connect(self.on_command)
        t.deactivated.connect(lambda: self.dock.set_segmenting(False))
        self.encoder.progress.connect(lambda f, text: self.dock.set_encoding(True, f, text))
        self.encoder.idle.connect(lambda: self.dock.set_encoding(False))
        self.encoder.crop_done.connect(self.on_crop_encoded)
        self.encoder.extent_done.connect(self.on_extent_encoded)
        self.canvas.destinationCrsChanged.connect(self._show_prompts)

    # --- settings, models, raster ---

    def apply_settings(self, settings: Settings) -> None:
        """Take new settings (Options page): models folder, cache, threads, defaults."""
        self.settings = settings
        self._cache = EmbeddingCache(settings.cache_dir or None, settings.cache_max_bytes)
        self.tool.hover_enabled = settings.hover_preview
        self.dock.set_refine(settings.refine)
        self.refresh_models()

    def refresh_models(self) -> None:
        """Look for the model files again (after setup, or a new models folder)."""
        models = find_models(self.settings.models_dir, self.settings.encoder_path, self.settings.decoder_path)
        if models != self.models:
            self._segmenter, self._segmenter_key = None, None
        self.models = models
        self.dock.set_model_status(models.complete, models.describe())
        self._update_estimate()

    def segmenter(self) -> RasterSegmenter:
        """The segmenter of the chosen raster and bands (built on first need); raises if unusable."""
        layer = self.dock.raster_layer()
        if layer is None:
            raise SegmentationError("choose the raster to segment in the AI Segmentation panel")
        if not self.models.complete:
            raise ModelError(f"SAM models are missing: {self.models.describe()}. Click 'Set up models…' "
                             f"in the AI Segmentation panel, or see {MODELS_HELP}")
        choice = self.dock.source_choice()
        key = (layer.id(), layer.source(), layer.crs().toWkt(), choice.bands, self.models,
               self._cache.directory, self.settings.threads)
        if key != self._segmenter_key:
            source = source_from_layer(layer, choice.bands)
            self._segmenter = RasterSegmenter(source, self.models.encoder, self.models.decoder,
                                              self._cache, self.settings.encoder_threads)
            self._segmenter_key = key
            if source.notice:
                log.warning(source.notice)
            self._start_prepare(self._segmenter)
        return self._segmenter

    def _start_prepare(self, segmenter: RasterSegmenter) -> None:
        """Hash the encoder file (cache keys need it; ViT-B takes about a second) and load the
        decoder in the background, so that neither freezes the first click."""

        def work(_task: QgsTask) -> None:
            segmenter.cache.encoder_hash(segmenter.encoder_path)
            segmenter.prepare()

        def done(exception: Optional[BaseException], _value: Any = None) -> None:
            if self._closed:
                return
            self._prepare = None
            if exception is not None:
                log.report_exception(exception, "Loading the SAM models")
            elif segmenter is self._segmenter:
                self._prepared = segmenter
                self._update_estimate()

        self._prepare = QgsTask.fromFunction("AI Segmentation: reading the encoder", work, on_finished=done)
        QgsApplication.taskManager().addTask(self._prepare)

    @property
    def raster_crs(self) -> QgsCoordinateReferenceSystem:
        layer = self.dock.raster_layer()
        return layer.crs() if layer is not None else QgsCoordinateReferenceSystem()

    @guarded
    def on_source_changed(self, _choice: object) -> None:
        """A new raster or band choice: start a new session and read the raster's description."""
        self.clear()
        self._segmenter, self._segmenter_key = None, None
        if self.dock.raster_layer() is None or not self.models.complete:
            self._update_estimate()
            return
        try:
            self.segmenter()
        except SegmentationError as exc:  # e.g. a web layer: said in the panel, not pushed
            self.dock.set_estimate(str(exc))
            return
        self._update_estimate()

    @guarded
    def on_scope_changed(self, _request: object) -> None:
        self._update_estimate()

    def _crops(self, segmenter: RasterSegmenter, request: EncodeRequest) -> list:
        if request.scope != SCOPE_VISIBLE:
            return segmenter.crops_in_extent(None)
        e = self.canvas.extent()
        extent = extent_to_raster_crs((e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()),
                                      self.canvas.mapSettings().destinationCrs(), segmenter.source)
        return segmenter.crops_in_extent(extent)

    def _update_estimate(self) -> None:
        layer = self.dock.raster_layer()
        if layer is None or not self.models.complete:
            self.dock.set_estimate("")
            return
        segmenter = self._segmenter
        if segmenter is None or segmenter is not self._prepared:
            self.dock.set_estimate("Encoding is optional: clicking encodes the area under the click.")
            return
        try:
            crops = self._crops(segmenter, self.dock.encode_request())
            self.dock.set_estimate(segmenter.estimate(crops).text)
        except SegmentationError as exc:
            self.dock.set_estimate(str(exc))

    # --- encoding ---

    @guarded
    def on_encode_requested(self, request: EncodeRequest) -> None:
        segmenter = self.segmenter()
        crops = self._crops(segmenter, request)
        if not crops:
            raise SegmentationError("the visible extent does not overlap the raster: pan to it, or encode "
                                    "the whole raster")
        self.encoder.encode_extent(segmenter, crops)

    @guarded
    def on_crop_encoded(self, ok: bool, error: str) -> None:
        if ok:
            self._segment_current()
        elif error:
            log.warning(error)

    @guarded
    def on_extent_encoded(self, ok: bool, message: str) -> None:
        (log.success if ok else log.warning)(message)
        self._update_estimate()

    # --- prompts ---

    @guarded
    def on_segment_toggled(self, on: bool) -> None:
        if not on:
            if self.canvas.mapTool() is self.tool:
                self.canvas.unsetMapTool(self.tool)
            self.dock.set_segmenting(False)
            return
        try:
            self.segmenter()
        except SegmentationError:
            self.dock.set_segmenting(False)
            raise
        self.canvas.setMapTool(self.tool)
        self.canvas.setFocus()
        self.dock.set_segmenting(True)

    def _canvas_to_raster(self, points: list) -> tuple:
        segmenter = self.segmenter()
        return segmenter, points_to_raster_crs(points, self.canvas.mapSettings().destinationCrs(),
                                               segmenter.source)

    @guarded
    def add_point(self, x: float, y: float, label: int) -> None:
        """A click at ``(x, y)`` in the canvas CRS: 1 include, 0 exclude."""
        segmenter, ((rx, ry),) = self._canvas_to_raster([(x, y)])
        segmenter.crop_for(MapPrompt(points=((rx, ry),), labels=(INCLUDE,)))  # raises when outside
        self.history.add_point(rx, ry, label)
        self._prompts_changed()

    @guarded
    def set_box(self, xmin: float, ymin: float, xmax: float, ymax: float) -> None:
        segmenter = self.segmenter()
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
        self.history.clear()
        self._prompts_changed()

    def _prompts_changed(self) -> None:
        self._show_prompts()
        self._segment_current()

    def _show_prompts(self) -> None:
        current = self.history.current
        self.markers.show(current, self.raster_crs)
        self.dock.set_prompt_summary(*current.counts, current.box is not None)

    def _segment_current(self) -> None:
        """Show the current prompts' mask, decoding it if needed (or encoding its crop first)."""
        prompts = self.history.current
        if prompts.is_empty or self.history.result is not None:
            self._show(self.history.result)
            return
        segmenter = self.segmenter()
        previous = self.history.previous_result
        try:
            seg = segmenter.segment(to_map_prompt(prompts), previous.chosen_only() if previous else None,
                                    multimask=prompts.wants_candidates)
        except NotEncodedError as exc:
            self.encoder.encode_crop(segmenter, exc.crop)
            return  # on_crop_encoded comes back here
        self.history.result = Result(seg, seg.best)
        self._show(self.history.result)

    def _show(self, result: Optional[Result]) -> None:
        if result is None:
            self.overlay.clear()
            self.dock.set_candidates(())
        else:
            self.overlay.set_mask(result.mask, result.seg.geotransform, self.raster_crs)
            self.dock.set_candidates([float(s) for s in result.seg.scores], result.index)
        self.dock.set_can_save(result is not None)

    @guarded
    def choose_mask(self, index: int) -> None:
        result = self.history.result
        if result is not None and 0 <= index < len(result.seg.scores):
            result.index = index
            self._show(result)

    @guarded
    def on_command(self, command: str) -> None:
        result = self.history.result
        if command in ("next_mask", "previous_mask") and result is not None:
            step = 1 if command == "next_mask" else -1
            self.choose_mask((result.index + step) % len(result.seg.scores))
        elif command == "save":
            self.save()
        elif command == "undo":
            self.undo()
        elif command == "clear":
            self.clear()

    @guarded
    def on_hover(self, x: float, y: float) -> None:
        """Preview the mask the cursor position would add, from cached crops only."""
        if not self.settings.hover_preview or self.encoder.busy or self._segmenter is None:
            return
        try:
            segmenter, ((rx, ry),) = self._canvas_to_raster([(x, y)])
            prompts = self.history.current.with_point(rx, ry, INCLUDE)
            seg = segmenter.segment(to_map_prompt(prompts), multimask=prompts.wants_candidates)
        except SegmentationError:
            self._show(self.history.result)  # off the raster or not encoded: no hover preview
            return
        self.overlay.set_mask(seg.masks[seg.best], seg.geotransform, self.raster_crs)

    # --- saving and export ---

    @guarded
    def save(self) -> None:
        result = self.history.result
        if result is None:
            busy = " (wait for the encoding to finish)" if self.encoder.busy else ""
            raise SegmentationError(f"nothing to save yet: click on an object first{busy}")
        layer = self.dock.raster_layer()
        if layer is None:
            raise SegmentationError("choose the raster to segment in the AI Segmentation panel")
        seg = result.seg
        params = self.dock.refine_params().scaled(seg.crop.scale)
        polygons = mask_to_polygons(result.mask, seg.geotransform, seg.crs_wkt, params)
        n_pos, n_neg = self.history.current.counts
        attributes = ObjectAttributes(
            label=self.dock.object_label(), score=float(seg.scores[result.index]), source=layer.name(),
            model=os.path.basename(self.models.encoder or ""), n_positive=n_pos, n_negative=n_neg,
        )
        fid = self.output.save(polygons.wkb, layer.crs(), attributes, f"{layer.name()}_objects")
        out = self.output.layer
        self.dock.set_output_layer(out)
        log.success(f"Saved object {fid} to '{out.name() if out else 'output layer'}'")
        self.clear()

    @guarded
    def on_output_changed(self, _choice: object) -> None:
        layer = self.dock.ui.output_combo.currentLayer()
        try:
            self.output.use_layer(layer)
        except SegmentationError:
            self.dock.set_output_layer(self.output.layer)
            raise

    @guarded
    def on_export_requested(self) -> None:
        from .export_dialog import export_interactively

        export_interactively(self.iface.mainWindow(), self.output)

    @guarded
    def on_setup_requested(self) -> None:
        if self._open_setup is not None:
            self._open_setup()
        self.apply_settings(Settings.load())  # the dialog may have chosen another models folder

    # --- lifecycle ---

    def shutdown(self) -> None:
        """Cancel tasks and remove everything from the canvas (plugin unload)."""
        self._closed = True
        self.encoder.shutdown()
        if self.canvas.mapTool() is self.tool:
            self.canvas.unsetMapTool(self.tool)
        with contextlib.suppress(TypeError):  # already disconnected
            self.canvas.destinationCrsChanged.disconnect(self._show_prompts)
        self.markers.clear()
        self.overlay.dispose()
        self.output.close()
        self._segmenter = None
