"""aisegmentation:segment_prompts — one polygon per object of a prompt layer, as clicking would give."""

from __future__ import annotations

import os
from typing import Any, Dict, List

from qgis.core import (
    QgsFeature,
    QgsField,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
)

from ..core.errors import SegmentationError
from ..core.polygon_exporter import mask_to_polygons
from ..core.qgis_compat import NUMBER_DOUBLE, NUMBER_INTEGER, SOURCE_VECTOR_POINT, SOURCE_VECTOR_POLYGON, make_field
from ..core.segment.mask_ops import EmptyMaskError, RefineParams
from ..gui.prompting.prompts import PromptSet
from .common import CANCELED, OUTPUT, AlgorithmBase, object_feature, output_fields, segment
from .prompt_layer import LABEL_FIELD, read_objects

PROMPTS, GROUP_FIELD, SIMPLIFY, MIN_AREA = "PROMPTS", "GROUP_FIELD", "SIMPLIFY", "MIN_AREA"
GROUP_OUT = "prompt_group"  # output field holding the group value (or the prompt feature id)
_DEFAULT = RefineParams()


class SegmentPromptsAlgorithm(AlgorithmBase):
    """Batch version of the map tool: every object of a prompt layer becomes one polygon."""

    def name(self) -> str:
        return "segment_prompts"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return "Segment objects from a prompt layer"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return (
            "Segments one object per prompt group with SAM, exactly as clicking in the AI Segmentation "
            "panel would (same crops, re-centring at crop edges, same embedding cache; missing crops "
            "are encoded on the way).\n"
            f"PROMPTS: points are clicks, with an optional integer field '{LABEL_FIELD}' (1 include, "
            "0 exclude; 1 when missing); a polygon gives a box prompt (its bounding box). Any CRS.\n"
            "GROUP_FIELD: features sharing a value form one object (points plus at most one box); "
            "without it every feature is its own object.\n"
            "SIMPLIFY (pixels) and MIN_AREA (pixels) refine the outline as in the panel.\n"
            "OUTPUT: one (multi)polygon per object in the raster's CRS, with the panel's output fields "
            f"and '{GROUP_OUT}' (the group value, or the prompt feature id)."
        )

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802 (QGIS API)
        self.add_raster_parameters()
        self.addParameter(QgsProcessingParameterFeatureSource(
            PROMPTS, "Prompts (points and/or box polygons)",
            [SOURCE_VECTOR_POINT, SOURCE_VECTOR_POLYGON]))
        self.addParameter(QgsProcessingParameterField(
            GROUP_FIELD, "Group field (features sharing a value form one object)", None, PROMPTS,
            optional=True))
        self.add_model_parameters()
        self.addParameter(QgsProcessingParameterNumber(
            SIMPLIFY, "Simplify tolerance (pixels; 0 keeps the pixel outline)",
            NUMBER_DOUBLE, _DEFAULT.simplify_px, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            MIN_AREA, "Drop parts smaller than (pixels; the largest part is always kept)",
            NUMBER_INTEGER, _DEFAULT.min_area_px, minValue=0))
        self.addParameter(QgsProcessingParameterFeatureSink(
            OUTPUT, "Segmented objects", SOURCE_VECTOR_POLYGON))

    def processAlgorithm(self, parameters: Dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> Dict[str, Any]:
        self.check_output(parameters, context)  # before any work
        layer = self.raster_layer(parameters, context)
        source = self.parameterAsSource(parameters, PROMPTS, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, PROMPTS))
        group = self.parameterAsString(parameters, GROUP_FIELD, context)
        refine = RefineParams(self.parameterAsDouble(parameters, SIMPLIFY, context), _DEFAULT.fill_holes_px,
                              self.parameterAsInt(parameters, MIN_AREA, context))
        segmenter = self.segmenter(parameters, context, layer, feedback)
        crs = layer.crs()
        objects = read_objects(source, group, crs, context.transformContext(), feedback)
        if not objects:
            raise QgsProcessingException("The prompt layer holds no point or polygon to segment.")
        group_field = QgsField(source.fields().field(group)) if group else make_field(GROUP_OUT, "int64")
        group_field.setName(GROUP_OUT)
        fields = output_fields([group_field], pixel_units=not segmenter.source.georeferenced)
        model = os.path.basename(segmenter.encoder_path)
        features: List[QgsFeature] = []
        for i, obj in enumerate(objects):
            if feedback.isCanceled():
                break
            prompts = PromptSet(tuple(obj.points), tuple(obj.labels), obj.box)
            try:
                seg = segment(segmenter, obj.prompt(), prompts.wants_candidates, feedback)
                best = seg.best
                polygons = mask_to_polygons(seg.masks[best], seg.geotransform, seg.crs_wkt,
                                            refine.scaled(seg.crop.scale))
            except EmptyMaskError:
                feedback.pushWarning(f"{obj.name}: SAM found no mask; no polygon for it.")
                continue
            except SegmentationError as exc:
                raise QgsProcessingException(f"{obj.name}: {exc}") from None
            n_pos, n_neg = prompts.counts
            features.append(object_feature(fields, polygons.wkb, crs, {
                "label": "" if obj.key is None or not group else str(obj.key),
                "score": float(seg.scores[best]), "source": layer.name(), "model": model,
                "n_positive": n_pos, "n_negative": n_neg, GROUP_OUT: obj.key}))
            feedback.setProgress(100.0 * (i + 1) / len(objects))
        if feedback.isCanceled():
            raise QgsProcessingException(CANCELED)
        feedback.pushInfo(f"{len(features)} of {len(objects)} objects segmented.")
        return {OUTPUT: self.write_output(parameters, context, fields, crs, features)}
