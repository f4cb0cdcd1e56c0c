"""aisegmentation:find_similar — objects that look like example objects, found by embedding similarity."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransformContext,
    QgsFeatureRequest,
    QgsFeatureSource,
    QgsFields,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from ..core.embeddings.embedding_export import EmbeddingExportError, check_output_path, write_geotiff
from ..core.embeddings.similarity import Example, SimilarObject, SimilarParams, SimilarSearch
from ..core.errors import SegmentationError
from ..core.qgis_compat import GEOMETRY_POLYGON, NUMBER_DOUBLE, NUMBER_INTEGER, SOURCE_VECTOR_POLYGON, make_field
from ..core.segment.segmenter import MapPrompt
from .common import CANCELED, EXTENT, OUTPUT, AlgorithmBase, object_feature, output_fields, segment
from .export_embeddings_algorithm import encode_crops, progress_to

EXAMPLES, THRESHOLD, MAX_OBJECTS, HEATMAP = "EXAMPLES", "THRESHOLD", "MAX_OBJECTS", "HEATMAP"
PEAKS, FOUND = "PEAKS", "FOUND"
SIMILARITY_FIELD, SOURCE_FIELD = "similarity", "source_id"
_DEFAULTS = SimilarParams()


def read_examples(source: QgsFeatureSource, raster_crs: QgsCoordinateReferenceSystem,
                  context: QgsCoordinateTransformContext, fids: Optional[Iterable[int]] = None) -> List[Example]:
    """Polygons of ``source`` (only ``fids`` if given) in the raster CRS, with their id and ``label``."""
    request = QgsFeatureRequest()
    if fids is not None:
        request.setFilterFids(list(fids))
    if raster_crs.isValid():
        request.setDestinationCrs(raster_crs, context)
    label_index = source.fields().lookupField("label")
    examples = []
    for feature in source.getFeatures(request):
        geometry = feature.geometry()
        if geometry.isNull() or geometry.isEmpty() or geometry.type() != GEOMETRY_POLYGON:
            continue
        value = feature.attributes()[label_index] if label_index >= 0 else None
        label = "" if value is None or (hasattr(value, "isNull") and value.isNull()) else str(value)
        examples.append(Example(int(feature.id()), bytes(geometry.asWkb()), label))
    return examples


def similar_fields(pixel_units: bool = False) -> QgsFields:
    """The output-layer fields (see :func:`output_fields`) plus ``similarity`` (cosine, -1..1) and
    ``source_id`` (the example's id)."""
    return output_fields([make_field(SIMILARITY_FIELD, "double"), make_field(SOURCE_FIELD, "int64")], pixel_units)


def similar_values(obj: SimilarObject, source_name: str, model: str) -> Dict[str, Any]:
    """Attribute values of a found object (area, perimeter and time are added by ``object_feature``)."""
    return {"label": obj.example.label, "score": obj.score, "source": source_name, "model": model,
            "n_positive": 1, "n_negative": 0, SIMILARITY_FIELD: obj.similarity, SOURCE_FIELD: obj.example.id}


class FindSimilarAlgorithm(AlgorithmBase):
    """Every object like the examples in an extent, one polygon each."""

    def name(self) -> str:
        return "find_similar"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return "Find similar objects"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return (
            "Finds objects that look like the EXAMPLES (polygons, e.g. objects saved from the AI "
            "Segmentation panel; tick 'Selected features only' to use a selection), without training. "
            "Each example's signature is the mean SAM image embedding under its polygon. Every "
            "embedding cell of EXTENT (default: the whole raster) is scored by its cosine similarity "
            "to each signature; places at least THRESHOLD similar over an example's footprint, one "
            "per object (non-maximum suppression at the example's size) and away from the examples, "
            "are segmented with SAM from a single click there, keeping the candidate mask whose size "
            "is closest to the example's. At most MAX_OBJECTS, most similar first. Crops not encoded "
            "yet are encoded first, into the cache the panel uses.\n"
            f"OUTPUT: the panel's output fields (label = the example's) plus '{SIMILARITY_FIELD}' "
            f"and '{SOURCE_FIELD}' (the id of the example it resembles most).\n"
            "HEATMAP (optional): the similarity of every cell (the best over the examples) as a "
            "GeoTIFF, to choose a threshold.\n"
            "Similarities depend on the model: look at the heat map, then raise THRESHOLD if "
            "unlike objects come out, lower it if some are missed."
        )

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802 (QGIS API)
        self.add_raster_parameters()
        self.addParameter(QgsProcessingParameterFeatureSource(
            EXAMPLES, "Example objects (polygons)", [SOURCE_VECTOR_POLYGON]))
        self.addParameter(QgsProcessingParameterExtent(
            EXTENT, "Extent to search (default: the whole raster)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            THRESHOLD, "Similarity threshold (cosine, -1 to 1)", NUMBER_DOUBLE, _DEFAULTS.threshold,
            minValue=-1.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber(
            MAX_OBJECTS, "Most objects to find", NUMBER_INTEGER, _DEFAULTS.max_objects, minValue=1))
        self.add_model_parameters()
        self.addParameter(QgsProcessingParameterFeatureSink(OUTPUT, "Similar objects", SOURCE_VECTOR_POLYGON))
        self.addParameter(QgsProcessingParameterRasterDestination(
            HEATMAP, "Similarity heat map", optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber(PEAKS, "Places found above the threshold"))
        self.addOutput(QgsProcessingOutputNumber(FOUND, "Objects written"))

    def processAlgorithm(self, parameters: Dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> Dict[str, Any]:
        layer = self.raster_layer(parameters, context)
        source = self.parameterAsSource(parameters, EXAMPLES, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, EXAMPLES))
        heatmap = self.parameterAsOutputLayer(parameters, HEATMAP, context)
        crs = layer.crs()
        self.check_output(parameters, context)  # before any work
        try:
            if heatmap:
                heatmap = check_output_path(heatmap)
            params = SimilarParams(self.parameterAsDouble(parameters, THRESHOLD, context),
                                   self.parameterAsInt(parameters, MAX_OBJECTS, context))
            examples = read_examples(source, crs, context.transformContext())
            if not examples:
                raise QgsProcessingException("EXAMPLES holds no polygon: give the objects to find more of.")
            segmenter = self.segmenter(parameters, context, layer)
            fields = similar_fields(pixel_units=not segmenter.source.georeferenced)
            search = SimilarSearch(segmenter, examples, self.extent(parameters, context, layer), params)
            encode_crops(segmenter, search.crops, feedback, 50.0)
            scores = search.score(feedback.isCanceled, progress_to(feedback, 50.0, 60.0))
            peaks = search.peaks(scores) if not feedback.isCanceled() else []
            feedback.pushInfo(f"{len(peaks)} places at least {params.threshold} similar to the examples.")
            objects = search.objects(
                peaks, lambda xy: segment(segmenter, MapPrompt(points=(xy,), labels=(1,)), True, feedback),
                feedback.isCanceled, progress_to(feedback, 60.0, 100.0))
            if feedback.isCanceled():
                raise QgsProcessingException(CANCELED)
            if heatmap:
                write_geotiff(heatmap, scores.best[None], scores.geotransform(segmenter.source.geotransform),
                              segmenter.source.crs_wkt, ["similarity"])
        except (EmbeddingExportError, SegmentationError) as exc:
            raise QgsProcessingException(f"Find similar: {exc}") from None
        model = os.path.basename(segmenter.encoder_path)
        features = [object_feature(fields, o.wkb, crs, similar_values(o, layer.name(), model)) for o in objects]
        feedback.pushInfo(f"{len(features)} objects from {len(peaks)} places (duplicates dropped).")
        out = {OUTPUT: self.write_output(parameters, context, fields, crs, features), PEAKS: len(peaks),
               FOUND: len(features)}
        if heatmap:
            out[HEATMAP] = heatmap
        return out
