"""aisegmentation:export_coco — polygons on a raster -> a COCO dataset for fine-tuning SAM (finestSAM)."""

from __future__ import annotations

from typing import Any, Dict, List

from qgis.core import (
    QgsFeatureRequest,
    QgsFeatureSource,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QVariant

from ..core.coco.coco_export import (
    DEFAULT_CATEGORY,
    MIN_CHIP,
    CocoExportParams,
    ExportCanceledError,
    SourcePolygon,
    chips_extent,
    export_coco,
)
from ..core.coco.coco_writer import CocoExportError, check_output_folder
from ..core.errors import SegmentationError
from ..core.families.transforms import IMG_SIZE
from ..core.qgis_compat import NUMBER_DOUBLE, NUMBER_INTEGER, SOURCE_VECTOR_POLYGON
from ..core.raster.qgis_raster import source_from_layer
from .common import BANDS, CANCELED, EXTENT, INPUT, AlgorithmBase

POLYGONS, CATEGORY_FIELD, CHIP_SIZE, OVERLAP = "POLYGONS", "CATEGORY_FIELD", "CHIP_SIZE", "OVERLAP"
VAL_FRACTION, SEED, MIN_VISIBLE, OVERWRITE = "VAL_FRACTION", "SEED", "MIN_VISIBLE_FRACTION", "OVERWRITE"
OUTPUT_FOLDER, IMAGES, ANNOTATIONS = "OUTPUT_FOLDER", "IMAGES", "ANNOTATIONS"
TRUNCATED, DROPPED = "TRUNCATED", "DROPPED"
_DEFAULTS = CocoExportParams()


def _category(value: Any) -> str:
    """A category field value -> its name; NULL and blank values -> :data:`DEFAULT_CATEGORY`."""
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return DEFAULT_CATEGORY
    return str(value).strip() or DEFAULT_CATEGORY


class ExportCocoAlgorithm(AlgorithmBase):
    """Image chips and COCO annotations from a raster and a polygon layer."""

    def name(self) -> str:
        return "export_coco"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return "Export training data (COCO dataset for fine-tuning SAM)"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return (
            "Cuts INPUT into CHIP_SIZE x CHIP_SIZE chips at native resolution (neighbours overlap by at least "
            "OVERLAP pixels) and writes, for the chips that hold polygons, PNG images with the bands and "
            "stretch the AI Segmentation panel shows, and COCO annotations: one per polygon and chip, "
            "clipped to the chip, in chip pixel coordinates, with category (CATEGORY_FIELD; empty: one "
            f"category '{DEFAULT_CATEGORY}'), bbox, area and iscrowd 0. Polygons with holes are written as "
            "RLE masks (COCO polygons cannot hold holes), the others as polygons. Objects cut by a chip edge "
            "are flagged 'truncated' and dropped from a chip that shows less than MIN_VISIBLE_FRACTION of "
            "their area. POLYGONS may be in any CRS.\n"
            "Layout (finestSAM's): VAL_FRACTION 0 gives OUTPUT_FOLDER/data/images + annotations.json; above 0, "
            "train/ and val/, each with images/ + annotations.json, the chips split from SEED. Each folder "
            "also gets georef.json: every chip's geotransform and the CRS, to georeference predictions.\n"
            "OUTPUT_FOLDER must be new or empty; OVERWRITE replaces a dataset an earlier export wrote there."
        )

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802 (QGIS API)
        self.addParameter(QgsProcessingParameterRasterLayer(INPUT, "Raster (the chips are cut from it)"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            POLYGONS, "Polygons: the objects to learn (any CRS)", [SOURCE_VECTOR_POLYGON]))
        self.addParameter(QgsProcessingParameterField(
            CATEGORY_FIELD, f"Category field (empty: every polygon is '{DEFAULT_CATEGORY}')", "label", POLYGONS,
            optional=True))
        self.addParameter(QgsProcessingParameterExtent(EXTENT, "Extent (default: the whole raster)", optional=True))
        size = QgsProcessingParameterNumber(CHIP_SIZE, "Chip size (pixels)", NUMBER_INTEGER, _DEFAULTS.chip_size,
                                            minValue=MIN_CHIP)
        size.setMaximum(IMG_SIZE)
        self.addParameter(size)
        self.addParameter(QgsProcessingParameterNumber(
            OVERLAP, "Minimum overlap of neighbouring chips (pixels)", NUMBER_INTEGER, _DEFAULTS.overlap, minValue=0))
        self.addParameter(QgsProcessingParameterBand(
            BANDS, "Bands shown as R, G, B (default: as the AI Segmentation panel)", None, INPUT, optional=True,
            allowMultiple=True))
        val = QgsProcessingParameterNumber(VAL_FRACTION, "Validation fraction of chips (0: one data/ folder)",
                                           NUMBER_DOUBLE, _DEFAULTS.val_fraction, minValue=0.0)
        val.setMaximum(0.95)
        self.addParameter(val)
        self.addParameter(QgsProcessingParameterNumber(SEED, "Seed of the train/val split", NUMBER_INTEGER,
                                                       _DEFAULTS.seed))
        visible = QgsProcessingParameterNumber(MIN_VISIBLE, "Minimum visible fraction of an object cut by a chip edge",
                                               NUMBER_DOUBLE, _DEFAULTS.min_visible, minValue=0.0)
        visible.setMaximum(1.0)
        self.addParameter(visible)
        self.addParameter(QgsProcessingParameterBoolean(
            OVERWRITE, "Replace a dataset an earlier export wrote in the output folder", False))
        self.addParameter(QgsProcessingParameterFolderDestination(OUTPUT_FOLDER, "Dataset folder"))
        for name, text in ((IMAGES, "Chips written"), (ANNOTATIONS, "Annotations written"),
                           (TRUNCATED, "Annotations of objects cut by a chip edge"),
                           (DROPPED, "Object parts dropped below the minimum visible fraction")):
            self.addOutput(QgsProcessingOutputNumber(name, text))

    def processAlgorithm(self, parameters: Dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> Dict[str, Any]:
        params = CocoExportParams(
            chip_size=self.parameterAsInt(parameters, CHIP_SIZE, context),
            overlap=self.parameterAsInt(parameters, OVERLAP, context),
            val_fraction=self.parameterAsDouble(parameters, VAL_FRACTION, context),
            seed=self.parameterAsInt(parameters, SEED, context),
            min_visible=self.parameterAsDouble(parameters, MIN_VISIBLE, context),
            overwrite=self.parameterAsBoolean(parameters, OVERWRITE, context))
        folder = self.parameterAsFileOutput(parameters, OUTPUT_FOLDER, context)
        try:
            params.check()
            check_output_folder(folder, params.overwrite)  # before any work
            layer = self.raster_layer(parameters, context)
            source = source_from_layer(layer, self.parameterAsInts(parameters, BANDS, context) or None)
            polygons = self.parameterAsSource(parameters, POLYGONS, context)
            if polygons is None:
                raise QgsProcessingException(self.invalidSourceError(parameters, POLYGONS))
            field = self.parameterAsString(parameters, CATEGORY_FIELD, context)
            extent = self.extent(parameters, context, layer)
            area = chips_extent(source, params, extent)
            if area is None:
                raise QgsProcessingException(f"EXTENT does not overlap the raster '{layer.name()}'.")
            found = _read_polygons(polygons, field, layer, QgsRectangle(*area), context, feedback)
            if not found:
                where = "within EXTENT" if extent is not None else "on it"
                raise QgsProcessingException(
                    f"No polygon of '{polygons.sourceName()}' lies on the raster '{layer.name()}' {where} "
                    f"(compared in the raster's CRS, {layer.crs().authid() or 'none'}): nothing to export. "
                    "Check the layers overlap, or widen EXTENT.")
            feedback.pushInfo(f"{len(found)} polygons from '{polygons.sourceName()}' over '{layer.name()}'.")
            summary = export_coco(source, found, params, folder, extent, feedback.setProgress, feedback.isCanceled)
        except ExportCanceledError:
            raise QgsProcessingException(CANCELED) from None
        except SegmentationError as exc:  # CocoExportError, bad bands, unreadable raster
            raise QgsProcessingException(str(exc)) from None
        for split in summary.splits:
            feedback.pushInfo(f"{split}/: {summary.images[split]} chips, {summary.annotations[split]} annotations.")
        feedback.pushInfo(f"Categories: {', '.join(summary.categories)}. Cut by a chip edge: {summary.truncated} "
                          f"kept, {summary.dropped} dropped; {summary.rle} objects with holes written as RLE.")
        return {OUTPUT_FOLDER: summary.folder, IMAGES: sum(summary.images.values()),
                ANNOTATIONS: sum(summary.annotations.values()), TRUNCATED: summary.truncated,
                DROPPED: summary.dropped}


def _read_polygons(source: QgsFeatureSource, field: str, layer: QgsRasterLayer, area: QgsRectangle,
                   context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> List[SourcePolygon]:
    """The polygons overlapping ``area`` (raster CRS), projected to the raster's CRS, with categories."""
    index = -1
    if field:
        index = source.fields().lookupField(field)
        if index < 0:
            names = ", ".join(source.fields().names()) or "none"
            raise CocoExportError(
                f"CATEGORY_FIELD '{field}' is not a field of '{source.sourceName()}' (its fields: {names}): "
                f"choose one of them, or leave it empty to put every polygon in one category '{DEFAULT_CATEGORY}'.")
    request = QgsFeatureRequest()
    failed: List[int] = []
    if layer.crs().isValid():
        request.setDestinationCrs(layer.crs(), context.transformContext())
        request.setTransformErrorCallback(lambda feature: failed.append(feature.id()))
    request.setFilterRect(area)
    request.setSubsetOfAttributes([index] if index >= 0 else [])
    out = []
    for feature in source.getFeatures(request):
        if feedback.isCanceled():
            raise ExportCanceledError(CANCELED)
        geometry = feature.geometry()
        if geometry.isNull() or geometry.isEmpty():
            continue
        value = feature.attributes()[index] if index >= 0 else None
        out.append(SourcePolygon(feature.id(), _category(value), bytes(geometry.asWkb())))
    if failed:
        feedback.pushWarning(f"{len(failed)} polygons could not be projected to the raster's CRS and were skipped "
                             f"(feature ids {', '.join(str(i) for i in failed[:5])}).")
    return out
