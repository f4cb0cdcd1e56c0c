"""What the AI Segmentation algorithms share: raster and model parameters, the segmenter,
encoding with cancellation, and the output-layer fields and features."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Tuple

from osgeo import ogr
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBand,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QDateTime

from ..core import fs_checks as fs
from ..core.errors import SegmentationError
from ..core.families import providers as pv
from ..core.output.output_store import PIXEL_SCHEMA, SCHEMA, measure, to_qgs_geometry
from ..core.qgis_compat import WKB_MULTIPOLYGON, make_field
from ..core.raster.crops import CropSpec
from ..core.raster.geo import Extent
from ..core.raster.qgis_raster import source_from_layer
from ..core.segment.cache_location import open_cache
from ..core.segment.segmenter import MapPrompt, RasterSegmenter, Segmentation, segment_encoding
from ..toolbelt.metadata import PLUGIN_DIR
from ..toolbelt.models import find_models
from ..toolbelt.settings import Settings

INPUT, BANDS, EXTENT, ENCODER, DECODER, OUTPUT = "INPUT", "BANDS", "EXTENT", "ENCODER", "DECODER", "OUTPUT"
CANCELED = "Canceled: no output was written."
_LOG = logging.getLogger("ai_segmentation")
_PIXEL_AREA = "area_px"  # the field that marks pixel units (PIXEL_SCHEMA)
_FIELD_KINDS = {ogr.OFTString: "string", ogr.OFTReal: "double", ogr.OFTInteger: "int", ogr.OFTDateTime: "datetime"}


class AlgorithmBase(QgsProcessingAlgorithm):
    """Provider-wide naming, and parameters and set-up common to every algorithm."""

    def group(self) -> str:
        return ""

    def groupId(self) -> str:  # noqa: N802 (QGIS API)
        return ""

    def createInstance(self) -> QgsProcessingAlgorithm:  # noqa: N802 (QGIS API)
        return type(self)()

    def add_raster_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(INPUT, "Raster to segment"))
        self.addParameter(QgsProcessingParameterBand(
            BANDS, "Bands shown to SAM as R, G, B (default: by colour interpretation)", None, INPUT,
            optional=True, allowMultiple=True))

    def add_model_parameters(self, decoder: bool = True) -> None:
        self.addParameter(QgsProcessingParameterFile(
            ENCODER, "SAM encoder .onnx (default: the plugin's models folder)", extension="onnx",
            optional=True))
        if decoder:
            self.addParameter(QgsProcessingParameterFile(
                DECODER, "SAM decoder .onnx (default: the plugin's models folder)", extension="onnx",
                optional=True))

    def raster_layer(self, parameters: Dict[str, Any], context: QgsProcessingContext) -> QgsRasterLayer:
        layer = self.parameterAsRasterLayer(parameters, INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, INPUT))
        return layer

    def extent(self, parameters: Dict[str, Any], context: QgsProcessingContext,
               layer: QgsRasterLayer) -> Optional[Extent]:
        """EXTENT in the raster's CRS, or None (the whole raster) when it is not set."""
        r = self.parameterAsExtent(parameters, EXTENT, context, layer.crs())
        return None if r.isNull() else (r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum())

    def check_output(self, parameters: Dict[str, Any], context: QgsProcessingContext) -> None:
        """Fail now, before any encoding, if the OUTPUT file cannot be written (missing or read-only
        folder, a folder in its place, a full disk). Memory layers and database URIs are not checked."""
        dest = (self.parameterAsOutputLayer(parameters, OUTPUT, context) or "").split("|")[0]
        if not fs.is_local_path(dest):  # memory:, ogr:dbname=..., postgres://...
            return
        provider = self.provider()
        known = provider.supportedOutputVectorLayerExtensions() if provider else ["gpkg"]
        if os.path.splitext(dest)[1].lower().lstrip(".") not in known:
            dest += "." + (provider.defaultVectorFileExtension() if provider else "gpkg")  # as QGIS will
        fs.check_output_file(dest, "output file", error=QgsProcessingException)

    def write_output(self, parameters: Dict[str, Any], context: QgsProcessingContext, fields: QgsFields,
                     crs: QgsCoordinateReferenceSystem, features: List[QgsFeature]) -> str:
        """Create OUTPUT and write ``features``. Called once everything is computed, so a failure or
        a cancel before it leaves no partial output."""
        sink, dest = self.parameterAsSink(parameters, OUTPUT, context, fields, WKB_MULTIPOLYGON, crs)
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, OUTPUT))
        for feature in features:
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return dest

    def segmenter(self, parameters: Dict[str, Any], context: QgsProcessingContext, layer: QgsRasterLayer,
                  feedback: Optional[QgsProcessingFeedback] = None, decoder: bool = True) -> RasterSegmenter:
        """The segmenter the dock would use for this raster: same cache, models and crops.

        Without a decoder (the "encode" algorithm, whose only product is the cache) a cache
        folder that cannot be used is an error; otherwise a temporary one stands in, with a
        warning (to ``feedback``, else to the log).
        """
        settings = Settings.load()
        encoder_path, decoder_path = model_paths(
            self.parameterAsFile(parameters, ENCODER, context),
            self.parameterAsFile(parameters, DECODER, context) if decoder else "", settings, decoder)
        bands = self.parameterAsInts(parameters, BANDS, context) or None
        try:
            source = source_from_layer(layer, bands)
            cache, warning = open_cache(settings.cache_dir, settings.cache_max_bytes, fallback=decoder)
        except SegmentationError as exc:
            raise QgsProcessingException(str(exc)) from None
        for note in (warning, source.notice):
            if note:
                if feedback is not None:
                    feedback.pushWarning(note)
                else:
                    _LOG.warning(note)
        return RasterSegmenter(source, encoder_path, decoder_path, cache, settings.encoder_threads,
                               provider=settings.provider_choice)


def model_paths(encoder: str, decoder: str, settings: Settings, need_decoder: bool) -> Tuple[str, str]:
    """The ENCODER/DECODER files, else the best ones in the models folder (settings, then the
    plugin's own); raises a clear error when one is missing."""
    found = [find_models(d) for d in dict.fromkeys([settings.models_dir, str(PLUGIN_DIR / "models")])]
    paths = {"encoder": encoder or next((m.encoder for m in found if m.encoder), ""),
             "decoder": decoder or next((m.decoder for m in found if m.decoder), "")}
    for role in ("encoder", "decoder") if need_decoder else ("encoder",):
        path = paths[role]
        if not path:
            raise QgsProcessingException(
                f"No SAM {role} given and none found in {settings.models_dir}: set the "
                f"{role.upper()} parameter to a samexporter {role} .onnx file, or set the models up "
                "from the AI Segmentation panel.")
        paths[role] = fs.check_readable_file(path, f"SAM {role} file", QgsProcessingException)
    return paths["encoder"], paths["decoder"] if need_decoder else ""


def encode(segmenter: RasterSegmenter, crop: CropSpec, feedback: QgsProcessingFeedback) -> None:
    """Encode one crop into the cache unless it is there; raises :data:`CANCELED` when the user cancels."""
    if not feedback.isCanceled() and not segmenter.is_encoded(crop):
        feedback.pushInfo(f"Encoding crop {crop.as_dict()}")
        segmenter.encode(crop, feedback.isCanceled)
        text, fallback = pv.describe(segmenter.runs_on())
        if fallback:  # the chosen GPU provider is not the one running: say so beside the work
            feedback.pushWarning(text)
    if feedback.isCanceled():
        raise QgsProcessingException(CANCELED)


def segment(segmenter: RasterSegmenter, prompt: MapPrompt, multimask: bool,
            feedback: QgsProcessingFeedback) -> Segmentation:
    """:meth:`RasterSegmenter.segment`, encoding each crop it asks for first (as the map tool does);
    raises :data:`CANCELED` when the user cancels."""
    return segment_encoding(segmenter, prompt, multimask, lambda crop: encode(segmenter, crop, feedback))


def output_fields(extra: Optional[List[QgsField]] = None, pixel_units: bool = False) -> QgsFields:
    """The output-layer schema of the dock's GeoPackage (core.output.output_store.SCHEMA), then ``extra``;
    with ``pixel_units`` (a raster without georeferencing) ``area_px`` / ``perimeter_px`` (PIXEL_SCHEMA)."""
    fields = QgsFields()
    for name, kind in PIXEL_SCHEMA if pixel_units else SCHEMA:
        fields.append(make_field(name, _FIELD_KINDS[kind]))
    for f in extra or []:
        fields.append(f)
    return fields


def object_feature(fields: QgsFields, wkb: bytes, crs: QgsCoordinateReferenceSystem,
                   values: Dict[str, Any]) -> QgsFeature:
    """A feature of ``fields`` with the (multi)polygon ``wkb``, measured in ``crs`` (in pixels when
    ``fields`` are in pixel units, see :func:`output_fields`); ``values`` give the other attributes
    (label, score, source, model, counts, extras)."""
    geometry = to_qgs_geometry(wkb)
    pixels = fields.indexOf(_PIXEL_AREA) >= 0
    area, perimeter = measure(geometry, QgsCoordinateReferenceSystem() if pixels else crs)
    feature = QgsFeature(fields)
    feature.setGeometry(geometry)
    measured = {_PIXEL_AREA: area, "perimeter_px": perimeter} if pixels else {"area_m2": area, "perimeter_m": perimeter}
    row = {**measured, "created": QDateTime.currentDateTimeUtc(), **values}
    for name, value in row.items():
        feature[name] = value
    return feature
