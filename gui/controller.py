"""The segmentation controller: dock requests and map tool input -> segmenter, prompt session, output.

Everything here runs in the GUI thread and stays short: decoding runs in a
worker thread (:mod:`.segment_flow`), the encoder only in QgsTasks
(:mod:`.encoding`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, List, Optional

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsMapLayer, QgsProject, QgsRasterLayer, QgsTask
from qgis.PyQt.QtCore import QObject, QTimer

from ..ai_segmentation_dockwidget import AISegmentationDock
from ..ai_segmentation_maptool import SegmentationMapTool
from ..core import dependency_manager as deps
from ..core.errors import ModelError, SegmentationError
from ..core.output.output_store import ObjectAttributes
from ..core.polygon_exporter import mask_to_polygons
from ..core.raster.qgis_raster import extent_to_raster_crs, source_from_layer
from ..core.segment.cache_location import open_cache
from ..core.segment.embedding_cache import EmbeddingCache
from ..core.segment.segmenter import RasterSegmenter
from ..toolbelt import log
from ..toolbelt.log import guarded
from ..toolbelt.models import ModelFiles, find_models
from ..toolbelt.settings import Settings
from .encoding import EncodeManager
from .output import OutputManager
from .params import SCOPE_VISIBLE, EncodeRequest
from .prompting.session import PromptSession
from .runtime_watch import RuntimeWatch
from .text import plural

MODELS_HELP = "models/README.md"
ESTIMATE_DELAY_MS = 300  # the estimate follows pans and finished tasks, at most this often


class SegmentationController(QObject):
    """Owns the segmenter of the chosen raster, the prompt session, the tasks and the output."""

    def __init__(self, iface: Any, dock: AISegmentationDock, settings: Settings,
                 open_setup: Optional[Callable[[], None]] = None) -> None:
        super().__init__(dock)
        self.iface, self.dock, self.canvas = iface, dock, iface.mapCanvas()
        self.settings = settings
        self._open_setup = open_setup
        self.tool = SegmentationMapTool(self.canvas)
        self.tool.key_widgets = lambda: [self.dock]
        self.encoder = EncodeManager(self)
        self.session = PromptSession(self.canvas, dock, self.encoder, self.segmenter, self._raster_crs, self)
        self.output = OutputManager()
        self.models: ModelFiles = find_models(settings.models_dir, settings.encoder_path, settings.decoder_path)
        self._runtime_missing: List[str] = []
        self._cache = EmbeddingCache(settings.cache_dir or None, settings.cache_max_bytes)
        self._segmenter: Optional[RasterSegmenter] = None
        self._segmenter_key: Optional[tuple] = None
        self._prepare: Optional[QgsTask] = None  # referenced while it runs
        self._prepared: Optional[RasterSegmenter] = None  # segmenter whose encoder hash is known
        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(ESTIMATE_DELAY_MS)
        self._estimate_timer.timeout.connect(self._update_estimate)
        self.runtime = RuntimeWatch(self.dock.set_runtime, self)
        self._closed = False
        self._connect()
        self.apply_settings(settings)

    def _connect(self) -> None:
        d, t, s = self.dock, self.tool, self.session
        d.source_changed.connect(self.on_source_changed)
        d.encode_requested.connect(self.on_encode_requested)
        d.scope_changed.connect(self.on_scope_changed)
        d.cancel_requested.connect(self.encoder.cancel)
        d.segment_toggled.connect(self.on_segment_toggled)
        d.save_requested.connect(self.save)
        d.label_entered.connect(self.save_from_label)
        d.undo_requested.connect(s.undo)
        d.clear_requested.connect(s.clear)
        d.mask_chosen.connect(s.choose_mask)
        d.output_changed.connect(self.on_output_changed)
        d.export_requested.connect(self.on_export_requested)
        d.setup_requested.connect(self.on_setup_requested)
        t.point_clicked.connect(s.add_point)
        t.box_drawn.connect(s.set_box)
        t.hovered.connect(s.on_hover)
        t.command_key.connect(self.on_command)
        t.deactivated.connect(self.on_tool_deactivated)
        self.encoder.progress.connect(self.on_encode_progress)
        self.encoder.cancelling.connect(self.dock.set_cancelling)
        self.encoder.idle.connect(lambda: self.dock.set_encoding(False))
        self.encoder.crop_done.connect(self._on_models_used)
        self.session.flow.result.connect(lambda *_: self.runtime.touch(self._segmenter))
        self.encoder.extent_done.connect(self.on_extent_encoded)
        # Processing ("Encode") and other tasks fill the cache too: the estimate follows them.
        QgsApplication.taskManager().statusChanged.connect(self._on_task_status)
        self.canvas.extentsChanged.connect(self._on_extent_changed)
        QgsProject.instance().layersAdded.connect(self._on_layers_added)

    # --- settings, models, raster ---

    def apply_settings(self, settings: Settings) -> None:
        """Take new settings (Options page): models folder, cache, threads, defaults."""
        self.settings = settings
        self._cache, warning = open_cache(settings.cache_dir, settings.cache_max_bytes)
        if warning:
            log.warning(warning)
        self.tool.hover_enabled = self.session.hover_enabled = settings.hover_preview
        self.dock.set_refine(settings.refine)
        self.refresh_models()

    def refresh_models(self) -> None:
        """Look for the model files and onnxruntime again (after setup, or a new models folder)."""
        models = find_models(self.settings.models_dir, self.settings.encoder_path, self.settings.decoder_path)
        if models != self.models:
            self._segmenter, self._segmenter_key = None, None
        self.models = models
        self._runtime_missing = [r.name for r in deps.missing(deps.detect())]
        text = models.describe()
        if self._runtime_missing:
            text += (f". {' and '.join(self._runtime_missing)} "
                     f"{'is' if len(self._runtime_missing) == 1 else 'are'} not installed: click "
                     "'Set up models…' to install it")
        self.dock.set_model_status(models.complete and not self._runtime_missing, text)
        self._update_estimate()

    def segmenter(self) -> RasterSegmenter:
        """The segmenter of the chosen raster and bands (built on first need); raises if unusable."""
        layer = self.dock.raster_layer()
        if layer is None:
            raise SegmentationError("choose the raster to segment in the AI Segmentation panel")
        if not self.models.complete:
            raise ModelError(f"SAM models are missing: {self.models.describe()}. Click 'Set up models…' "
                             f"in the AI Segmentation panel, or see {MODELS_HELP}")
        if self._runtime_missing:
            raise ModelError(f"{', '.join(self._runtime_missing)} is not installed: click 'Set up models…' in "
                             "the AI Segmentation panel to install it")
        choice = self.dock.source_choice()
        key = (layer.id(), layer.source(), layer.crs().toWkt(), choice.bands, self.models,
               self._cache.directory, self.settings.threads, self.settings.provider_choice)
        if key != self._segmenter_key or self._segmenter is None:
            source = source_from_layer(layer, choice.bands)
            self._segmenter = RasterSegmenter(source, self.models.encoder, self.models.decoder,
                                              self._cache, self.settings.encoder_threads,
                                              provider=self.settings.provider_choice)
            self._segmenter_key = key
            if source.notice:
                log.warning(source.notice)
            self._start_prepare(self._segmenter)
        return self._segmenter

    def _on_models_used(self, *_args: object) -> None:
        self._estimate_soon()
        self.runtime.touch(self._segmenter)

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
                self.runtime.touch(segmenter)
                self._update_estimate()

        self._prepare = QgsTask.fromFunction("AI Segmentation: reading the encoder", work, on_finished=done)
        QgsApplication.taskManager().addTask(self._prepare)

    def _raster_crs(self) -> QgsCoordinateReferenceSystem:
        layer = self.dock.raster_layer()
        return layer.crs() if layer is not None else QgsCoordinateReferenceSystem()

    def _on_layers_added(self, layers: List[QgsMapLayer]) -> None:
        """A raster added while none is chosen becomes the one to segment."""
        if self.dock.raster_layer() is None:
            raster = next((lyr for lyr in layers if isinstance(lyr, QgsRasterLayer) and lyr.isValid()), None)
            if raster is not None:
                self.dock.set_layer(raster)

    @guarded
    def on_source_changed(self, _choice: object) -> None:
        """A new raster or band choice: start a new session and read the raster's description."""
        self.session.clear()
        self._segmenter, self._segmenter_key = None, None
        self.runtime.touch(None)
        if self.dock.raster_layer() is None or not self.models.complete:
            self._update_estimate()
            return
        try:
            self.segmenter()
        except SegmentationError as exc:  # e.g. a web layer: said in the panel, not pushed
            self.dock.set_estimate(str(exc))
            return
        self._update_estimate()

    # --- encoding ---

    @guarded
    def on_scope_changed(self, _request: object) -> None:
        self._update_estimate()

    def _on_extent_changed(self) -> None:
        if self.dock.encode_request().scope == SCOPE_VISIBLE:
            self._estimate_soon()

    def _on_task_status(self, *_args: object) -> None:
        self._estimate_soon()

    def _estimate_soon(self) -> None:
        """Update the estimate within ESTIMATE_DELAY_MS (a few file checks; not on every event)."""
        if not self._estimate_timer.isActive():
            self._estimate_timer.start()

    def _crops(self, segmenter: RasterSegmenter, request: EncodeRequest) -> tuple:
        """``(grid crops, support crops)`` of the request's scope (see :meth:`RasterSegmenter.crops_in_extent`)."""
        extent = None
        if request.scope == SCOPE_VISIBLE:
            e = self.canvas.extent()
            extent = extent_to_raster_crs((e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()),
                                          self.canvas.mapSettings().destinationCrs(), segmenter.source)
        return segmenter.crops_in_extent(extent), segmenter.crops_in_extent(extent, support=True)

    def _update_estimate(self) -> None:
        if self._closed:
            return
        layer = self.dock.raster_layer()
        if layer is None or not self.models.complete:
            self.dock.set_estimate("")
            return
        segmenter = self._segmenter
        if segmenter is None or segmenter is not self._prepared:
            self.dock.set_estimate("Encoding is optional: clicking encodes the area under the click.")
            return
        try:
            grid, support = self._crops(segmenter, self.dock.encode_request())
            text = segmenter.estimate(grid + support).text
            if support:
                text += (f"; {plural(len(support), 'coarser crop')} of them serve objects larger than a "
                         "crop's overlap, so that clicks here encode nothing more")
            self.dock.set_estimate(text)
        except SegmentationError as exc:
            self.dock.set_estimate(str(exc))

    @guarded
    def on_encode_requested(self, request: EncodeRequest) -> None:
        segmenter = self.segmenter()
        grid, support = self._crops(segmenter, request)
        if not grid:
            raise SegmentationError("the visible extent does not overlap the raster: pan to it, or encode "
                                    "the whole raster")
        self.encoder.encode_extent(segmenter, grid + support)

    def on_encode_progress(self, fraction: float, text: str) -> None:
        self.dock.set_encoding(True, fraction, text)
        if self.encoder.extent_busy:
            self._update_estimate()  # "n of N crops to encode" counts down as crops are cached

    @guarded
    def on_extent_encoded(self, ok: bool, message: str) -> None:
        (log.success if ok else log.warning)(message)
        self._update_estimate()

    # --- the map tool ---

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

    def on_tool_deactivated(self) -> None:
        """Another map tool took over: prompts and previews go (shortcuts no longer reach them)."""
        self.session.end()
        self.dock.set_segmenting(False)

    @guarded
    def on_command(self, command: str) -> None:
        if command == "next_mask":
            self.session.step_mask(1)
        elif command == "previous_mask":
            self.session.step_mask(-1)
        elif command == "save":
            self.save()
        elif command == "undo":
            self.session.undo()
        elif command == "clear":
            self.session.clear()

    # --- saving and export ---

    @guarded
    def save(self) -> None:
        session = self.session
        result = session.history.result
        if result is None:
            busy = " (wait for the mask to show)" if session.flow.busy or self.encoder.busy else ""
            raise SegmentationError(f"nothing to save yet: click on an object first{busy}")
        layer = self.dock.raster_layer()
        if layer is None:
            raise SegmentationError("choose the raster to segment in the AI Segmentation panel")
        seg = result.seg
        params = self.dock.refine_params().scaled(seg.crop.scale)
        polygons = mask_to_polygons(result.mask, seg.geotransform, seg.crs_wkt, params)
        n_pos, n_neg = session.history.current.counts
        attributes = ObjectAttributes(
            label=self.dock.object_label(), score=float(seg.scores[result.index]), source=layer.name(),
            model=os.path.basename(self.models.encoder or ""), n_positive=n_pos, n_negative=n_neg,
        )
        georeferenced = self._segmenter is None or self._segmenter.source.georeferenced
        saved = self.output.save(polygons.wkb, layer.crs(), attributes, f"{layer.name()}_objects",
                                 pixel_units=not georeferenced)
        self.dock.set_output_layer(self.output.layer, saved.path)
        log.success(saved.message)
        session.clear()

    @guarded
    def save_from_label(self) -> None:
        """Enter in the Label field: save, and give the keyboard back to the map."""
        self.save()
        if self.canvas.mapTool() is self.tool:
            self.canvas.setFocus()

    @guarded
    def on_output_changed(self, _choice: object) -> None:
        layer = self.dock.ui.output_combo.currentLayer()
        try:
            self.output.use_layer(layer)
        except SegmentationError:
            self.dock.set_output_layer(self.output.layer, self.output.path)
            raise
        self.dock.set_output_layer(self.output.layer, self.output.path)

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
        self._estimate_timer.stop()
        self.runtime.stop()
        self.encoder.shutdown()
        if self.canvas.mapTool() is self.tool:
            self.canvas.unsetMapTool(self.tool)
        self.session.shutdown()
        for signal, slot in ((QgsApplication.taskManager().statusChanged, self._on_task_status),
                             (self.canvas.extentsChanged, self._on_extent_changed),
                             (QgsProject.instance().layersAdded, self._on_layers_added)):
            with contextlib.suppress(TypeError):  # already disconnected
                signal.disconnect(slot)
        self.output.close()
        self._segmenter = None

