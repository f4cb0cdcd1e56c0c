""""Find Similar Objects…": the dialog, the background task, and saving what it finds.

The dialog only asks (raster, example objects, extent, threshold, how many, heat map);
:class:`SimilarRunner` builds the search in the GUI thread (layers are read there), runs it
in a :class:`FindSimilarTask` (encoding missing crops first, with progress and cancel in the
task manager), and back in the GUI thread appends the objects to the output layer (the
examples' layer when it is a plugin output layer, else a new one in the plugin's GeoPackage)
with ``similarity`` and ``source_id`` fields, and adds the heat map as a temporary layer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any, List, Optional

from qgis.core import (
    QgsApplication,
    QgsColorRampShader,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGradientColorRamp,
    QgsMapLayer,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSettings,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
    QgsVectorLayer,
)
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QSpinBox,
    QWidget,
)

from ..core.embeddings.embedding_export import write_geotiff
from ..core.embeddings.similarity import Peak, SimilarObject, SimilarParams, SimilarSearch
from ..core.errors import ModelError, SegmentationError
from ..core.output.output_store import SCHEMA, OutputStore, to_qgs_geometry
from ..core.qgis_compat import LAYER_FILTER_POLYGON, LAYER_FILTER_RASTER
from ..core.raster.qgis_raster import extent_to_raster_crs, source_from_layer
from ..core.segment.embedding_cache import EmbeddingCache
from ..core.segment.encode_task import ModelTask
from ..core.segment.segmenter import MapPrompt, RasterSegmenter, Segmentation, segment_encoding
from ..processing_provider.common import object_feature
from ..processing_provider.find_similar_algorithm import read_examples, similar_fields, similar_values
from ..toolbelt import log
from ..toolbelt.metadata import plugin_name
from ..toolbelt.models import find_models
from ..toolbelt.settings import Settings
from .output import default_store_path, unique_layer_name

_LOG = logging.getLogger("ai_segmentation")
_KEY = "ai_segmentation/similar_"  # remembered dialog values
HEATMAP_OPACITY = 0.65


@dataclass(frozen=True)
class SimilarChoice:
    """What the dialog asked for (layer ids, so nothing holds a layer)."""

    raster_id: str
    examples_id: str
    selected_only: bool = True
    visible_only: bool = True
    threshold: float = SimilarParams().threshold
    max_objects: int = SimilarParams().max_objects
    heatmap: bool = True


class FindSimilarDialog(QDialog):
    """The questions of "Find Similar Objects…"; :meth:`choice` holds the answers."""

    def __init__(self, parent: Optional[QWidget] = None, raster: Optional[QgsMapLayer] = None,
                 examples: Optional[QgsMapLayer] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{plugin_name()}: find similar objects")
        settings = QgsSettings()
        form = QFormLayout(self)
        self.raster_combo = QgsMapLayerComboBox(self)
        self.raster_combo.setFilters(LAYER_FILTER_RASTER)
        self.examples_combo = QgsMapLayerComboBox(self)
        self.examples_combo.setFilters(LAYER_FILTER_POLYGON)
        self.selected_check = QCheckBox(self)
        self.visible_check = QCheckBox("Search the visible extent only", self)
        self.visible_check.setChecked(True)
        self.threshold_spin = QDoubleSpinBox(self)
        self.threshold_spin.setRange(-1.0, 1.0)
        self.threshold_spin.setSingleStep(0.01)
        self.threshold_spin.setDecimals(2)
        self.threshold_spin.setValue(float(settings.value(_KEY + "threshold", SimilarParams().threshold)))
        self.threshold_spin.setToolTip("Least cosine similarity to an example, over its footprint. "
                                       "Look at the heat map to choose it.")
        self.max_spin = QSpinBox(self)
        self.max_spin.setRange(1, 100000)
        self.max_spin.setValue(int(settings.value(_KEY + "max_objects", SimilarParams().max_objects)))
        self.heatmap_check = QCheckBox("Show the similarity heat map", self)
        self.heatmap_check.setChecked(settings.value(_KEY + "heatmap", True, type=bool))
        form.addRow("Raster", self.raster_combo)
        form.addRow("Example objects", self.examples_combo)
        form.addRow("", self.selected_check)
        form.addRow("", self.visible_check)
        form.addRow("Similarity threshold", self.threshold_spin)
        form.addRow("Most objects", self.max_spin)
        form.addRow("", self.heatmap_check)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.examples_combo.layerChanged.connect(self._examples_changed)
        if raster is not None:
            self.raster_combo.setLayer(raster)
        if examples is not None:
            self.examples_combo.setLayer(examples)
        self._examples_changed(self.examples_combo.currentLayer())

    def _examples_changed(self, layer: Optional[QgsMapLayer]) -> None:
        count = layer.selectedFeatureCount() if isinstance(layer, QgsVectorLayer) else 0
        self.selected_check.setText(f"Selected objects only ({count} selected)")
        self.selected_check.setEnabled(count > 0)
        self.selected_check.setChecked(count > 0)

    def choice(self) -> SimilarChoice:
        raster, examples = self.raster_combo.currentLayer(), self.examples_combo.currentLayer()
        settings = QgsSettings()
        settings.setValue(_KEY + "threshold", self.threshold_spin.value())
        settings.setValue(_KEY + "max_objects", self.max_spin.value())
        settings.setValue(_KEY + "heatmap", self.heatmap_check.isChecked())
        return SimilarChoice(raster.id() if raster else "", examples.id() if examples else "",
                             self.selected_check.isChecked(), self.visible_check.isChecked(),
                             self.threshold_spin.value(), self.max_spin.value(), self.heatmap_check.isChecked())


class FindSimilarTask(ModelTask):
    """Encode what the search needs, score, find the peaks, segment them; touches no layer.

    After it ends: ``peaks``, ``objects`` (see :mod:`core.embeddings.similarity`), ``error`` (a message
    for the user, None when it worked or was cancelled), and the heat map at ``heatmap_path``.
    """

    failure = "finding similar objects"

    def __init__(self, search: SimilarSearch, heatmap_path: str = "") -> None:
        super().__init__("AI Segmentation: finding similar objects")
        self.search, self.heatmap_path = search, heatmap_path
        self.peaks: List[Peak] = []
        self.objects: List[SimilarObject] = []

    def work(self) -> None:
        seg = self.search.segmenter
        todo = [c for c in self.search.crops if not seg.is_encoded(c)]
        for n, crop in enumerate(todo, 1):
            if self.isCanceled():
                return
            seg.encode(crop, self.token)
            self.setProgress(50.0 * n / len(todo))
        if self.isCanceled():
            return
        scores = self.search.score(self.isCanceled, lambda f: self.setProgress(50.0 + 10.0 * f))
        if self.isCanceled():
            return
        self.peaks = self.search.peaks(scores)
        self.objects = self.search.objects(self.peaks, self._segment, self.isCanceled,
                                           lambda f: self.setProgress(60.0 + 40.0 * f))
        if self.heatmap_path and not self.isCanceled():
            src = seg.source
            write_geotiff(self.heatmap_path, scores.best[None], scores.geotransform(src.geotransform),
                          src.crs_wkt, ["similarity"])

    def _segment(self, xy) -> Segmentation:
        """The map tool's lazy encoding: encode each crop the decoder asks for, then decode again."""
        seg = self.search.segmenter
        return segment_encoding(seg, MapPrompt(points=(xy,), labels=(1,)), True,
                                lambda crop: seg.encode(crop, self.token))


def is_output_layer(layer: QgsVectorLayer) -> bool:
    """True for a GeoPackage layer with the plugin's output fields (objects can be appended)."""
    names = set(layer.fields().names())
    return layer.providerType() == "ogr" and all(name in names for name, _ in SCHEMA)


def append_objects(layer: QgsVectorLayer, objects: List[SimilarObject], crs: QgsCoordinateReferenceSystem,
                   source_name: str, model: str) -> int:
    """Add ``objects`` (polygons in ``crs``) to ``layer``, creating its ``similarity`` and
    ``source_id`` fields if needed; one write, committed when this returns."""
    provider = layer.dataProvider()
    missing = [f for f in similar_fields() if layer.fields().indexOf(f.name()) < 0]
    if missing and not provider.addAttributes(missing):
        raise SegmentationError(f"cannot add the fields {', '.join(f.name() for f in missing)} to "
                                f"'{layer.name()}': {provider.lastError()}")
    layer.updateFields()
    xform = None
    if crs.isValid() and layer.crs().isValid() and crs != layer.crs():
        xform = QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance())
    features = []
    for obj in objects:
        wkb = obj.wkb
        if xform is not None:
            geometry = to_qgs_geometry(wkb)
            geometry.transform(xform)
            wkb = bytes(geometry.asWkb())
        features.append(object_feature(layer.fields(), wkb, layer.crs(), similar_values(obj, source_name, model)))
    ok, _ = provider.addFeatures(features)
    if not ok:
        raise SegmentationError(f"cannot add the objects to '{layer.name()}': {provider.lastError()}")
    layer.updateExtents()
    layer.triggerRepaint()
    return len(features)


def style_heatmap(layer: QgsRasterLayer, low: float) -> None:
    """A colour ramp from ``low`` (dark) to 1 (bright), semi-transparent over the raster."""
    ramp = QgsStyle.defaultStyle().colorRamp("Viridis") or QgsGradientColorRamp(QColor(30, 0, 80),
                                                                                 QColor(250, 230, 30))
    function = QgsColorRampShader(low, 1.0, ramp)
    function.classifyColorRamp(5, -1)
    shader = QgsRasterShader(low, 1.0)
    shader.setRasterShaderFunction(function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(1.0)
    layer.setRenderer(renderer)
    layer.setOpacity(HEATMAP_OPACITY)


class SimilarRunner(QObject):
    """Runs one search at a time for the plugin; ``done(message)`` when it has ended.

    Args:
        iface: QGIS interface (canvas extent, message bar).
    """

    done = pyqtSignal(str)

    def __init__(self, iface: Any, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.task: Optional[FindSimilarTask] = None  # referenced while it runs
        self.heatmap: Optional[QgsRasterLayer] = None
        self.output: Optional[QgsVectorLayer] = None

    @property
    def busy(self) -> bool:
        return self.task is not None and not sip.isdeleted(self.task)

    def start(self, choice: SimilarChoice) -> FindSimilarTask:
        """Check the choice, build the search (GUI thread) and start its task."""
        if self.busy:
            raise SegmentationError("a search for similar objects is already running: wait or cancel it")
        project = QgsProject.instance()
        raster, examples = project.mapLayer(choice.raster_id), project.mapLayer(choice.examples_id)
        if not isinstance(raster, QgsRasterLayer) or not isinstance(examples, QgsVectorLayer):
            raise SegmentationError("choose the raster and the layer of example objects")
        if is_output_layer(examples) and examples.isEditable():
            raise SegmentationError(f"'{examples.name()}' is being edited: save or discard its edits first")
        settings = Settings.load()
        models = find_models(settings.models_dir, settings.encoder_path, settings.decoder_path)
        if not models.complete:
            raise ModelError(f"SAM models are missing: {models.describe()}; set them up from the AI "
                             "Segmentation panel")
        source = source_from_layer(raster)
        fids = examples.selectedFeatureIds() if choice.selected_only else None
        found = read_examples(examples, raster.crs(), project.transformContext(), fids)
        extent = None
        if choice.visible_only:
            e = self.iface.mapCanvas().extent()
            extent = extent_to_raster_crs((e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()),
                                          self.iface.mapCanvas().mapSettings().destinationCrs(), source)
        cache = EmbeddingCache(settings.cache_dir or None, settings.cache_max_bytes)
        segmenter = RasterSegmenter(source, models.encoder, models.decoder, cache, settings.encoder_threads,
                                    provider=settings.provider_choice)
        search = SimilarSearch(segmenter, found, extent, SimilarParams(choice.threshold, choice.max_objects,
                                                                       settings.refine))
        heatmap = (os.path.join(QgsProcessingUtils.tempFolder(), f"similarity_{uuid.uuid4().hex[:8]}.tif")
                   if choice.heatmap else "")
        task = FindSimilarTask(search, heatmap)
        task.taskCompleted.connect(lambda: self._finished(task, True, raster, examples, choice))
        task.taskTerminated.connect(lambda: self._finished(task, False, raster, examples, choice))
        self.task = task
        QgsApplication.taskManager().addTask(task)
        return task

    def _finished(self, task: FindSimilarTask, ok: bool, raster: QgsRasterLayer, examples: QgsVectorLayer,
                  choice: SimilarChoice) -> None:
        if task is not self.task:
            return
        self.task = None
        try:
            message = self._save(task, raster, examples, choice) if ok else (
                f"Find similar: {task.error}" if task.error else "Find similar cancelled: nothing was added.")
        except SegmentationError as exc:
            ok, message = False, f"Find similar: {exc}"
        (log.success if ok else log.warning)(message)
        self.done.emit(message)

    def _save(self, task: FindSimilarTask, raster: QgsRasterLayer, examples: QgsVectorLayer,
              choice: SimilarChoice) -> str:
        """GUI thread: write the objects and show the heat map; returns the message for the user."""
        if sip.isdeleted(raster) or sip.isdeleted(examples):
            raise SegmentationError("the raster or the example layer was removed meanwhile")
        target = examples if is_output_layer(examples) else self._new_output(raster)
        model = os.path.basename(task.search.segmenter.encoder_path)
        n = append_objects(target, task.objects, raster.crs(), raster.name(), model) if task.objects else 0
        self.output = target
        if task.heatmap_path and os.path.isfile(task.heatmap_path):
            heat = QgsRasterLayer(task.heatmap_path, f"Similarity to {examples.name()}", "gdal")
            style_heatmap(heat, max(-1.0, choice.threshold - 0.3))
            QgsProject.instance().addMapLayer(heat)
            self.heatmap = heat
        return (f"Found {n} objects like the {len(task.search.examples)} examples in '{raster.name()}' "
                f"({len(task.peaks)} places at least {choice.threshold:.2f} similar); added to "
                f"'{target.name()}'")

    def _new_output(self, raster: QgsRasterLayer) -> QgsVectorLayer:
        path = default_store_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        store = OutputStore(path, unique_layer_name(path, f"{raster.name()}_similar"), raster.crs())
        layer = store.layer()
        QgsProject.instance().addMapLayer(layer)
        store.close()  # the project owns the layer now
        return layer

    def shutdown(self) -> None:
        """Cancel the running search; its end reaches no one (plugin unload)."""
        if self.busy:
            for signal in (self.task.taskCompleted, self.task.taskTerminated):
                with contextlib.suppress(TypeError):
                    signal.disconnect()
            self.task.cancel()
        self.task = None
