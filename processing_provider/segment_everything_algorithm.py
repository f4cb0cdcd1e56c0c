"""aisegmentation:segment_everything — SAM's automatic mask generator over an extent, crop by crop."""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
)

from ..core.errors import SegmentationError
from ..core.polygon_exporter import mask_to_polygons
from ..core.qgis_compat import NUMBER_DOUBLE, NUMBER_INTEGER, SOURCE_VECTOR_POLYGON, make_field
from ..core.raster.crops import CropSpec
from ..core.raster.geo import extent_to_pixel_bounds, sub_geotransform
from ..core.raster.raster_source import RasterSource
from ..core.segment import automatic as amg
from ..core.segment.mask_ops import RefineParams
from ..core.segment.segmenter import RasterSegmenter
from .common import CANCELED, EXTENT, OUTPUT, AlgorithmBase, encode, object_feature, output_fields
from .point_decoder import PointDecoder

SIMPLIFY = "SIMPLIFY"
_META = amg.AmgParams()
# parameter name, description, type, Meta's default, minimum, maximum
_NUMBERS = [
    ("POINTS_PER_SIDE", "Points per side of each crop (grid of prompts)", "int", _META.points_per_side, 1, 1024),
    ("POINTS_PER_BATCH", "Points per progress step (the decoder takes one point per run)", "int",
     _META.points_per_batch, 1, 4096),
    ("PRED_IOU_THRESH", "Predicted IoU threshold", "float", _META.pred_iou_thresh, 0.0, 1.0),
    ("STABILITY_SCORE_THRESH", "Stability score threshold", "float", _META.stability_score_thresh, 0.0, 1.0),
    ("BOX_NMS_THRESH", "Box NMS IoU threshold (duplicates)", "float", _META.box_nms_thresh, 0.0, 1.0),
    ("MIN_MASK_REGION_AREA", "Fill holes and drop islands smaller than (pixels; 0: off)", "int",
     _META.min_mask_region_area, 0, None),
]


def extent_box(source: RasterSource, extent: Any) -> amg.Box:
    """End-exclusive raster pixels of a map extent (None: the whole raster), rounded outward."""
    if extent is None:
        return 0, 0, source.width, source.height
    c0, r0, c1, r1 = extent_to_pixel_bounds(source.geotransform, extent)
    return (max(0, math.floor(c0)), max(0, math.floor(r0)),
            min(source.width, math.ceil(c1)), min(source.height, math.ceil(r1)))


class SegmentEverythingAlgorithm(AlgorithmBase):
    """Every object SAM finds in an extent, one polygon each."""

    def name(self) -> str:
        return "segment_everything"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return "Segment everything (automatic masks)"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return (
            "SAM's automatic mask generator (Meta's SamAutomaticMaskGenerator) over EXTENT: a grid of "
            "POINTS_PER_SIDE x POINTS_PER_SIDE single-point prompts on each encoder crop (1024 pixels), "
            "three masks per point, kept when the predicted IoU exceeds PRED_IOU_THRESH and the "
            "stability score reaches STABILITY_SCORE_THRESH; duplicates removed by box NMS "
            "(BOX_NMS_THRESH), within and across crops. Objects cut by a crop edge are merged from "
            "the neighbouring crops, so each object is one polygon, clipped to the extent. "
            "MIN_MASK_REGION_AREA fills small holes and drops small islands (pixels).\n"
            "For CPU speed only the masks that pass the IoU filter are upscaled, and only where they "
            "can be positive; scores and masks are the same as Meta's.\n"
            "Meta's defaults suit real models; lower the thresholds if nothing comes out.\n"
            "OUTPUT: the panel's output fields (score = predicted IoU) plus 'stability'."
        )

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802 (QGIS API)
        self.add_raster_parameters()
        self.addParameter(QgsProcessingParameterExtent(
            EXTENT, "Extent (default: the whole raster)", optional=True))
        for name, text, kind, default, lo, hi in _NUMBERS:
            number = NUMBER_INTEGER if kind == "int" else NUMBER_DOUBLE
            param = QgsProcessingParameterNumber(name, text, number, default, minValue=lo)
            if hi is not None:
                param.setMaximum(hi)
            self.addParameter(param)
        self.addParameter(QgsProcessingParameterNumber(
            SIMPLIFY, "Simplify tolerance (pixels; 0 keeps the pixel outline)",
            NUMBER_DOUBLE, RefineParams().simplify_px, minValue=0.0))
        self.add_model_parameters()
        self.addParameter(QgsProcessingParameterFeatureSink(
            OUTPUT, "Segmented objects", SOURCE_VECTOR_POLYGON))

    def processAlgorithm(self, parameters: Dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> Dict[str, Any]:
        self.check_output(parameters, context)  # before any work
        layer = self.raster_layer(parameters, context)
        v = {name: (self.parameterAsInt if kind == "int" else self.parameterAsDouble)(parameters, name, context)
             for name, _, kind, _, _, _ in _NUMBERS}
        simplify = RefineParams(self.parameterAsDouble(parameters, SIMPLIFY, context), 0, 0)
        try:
            params = amg.AmgParams(v["POINTS_PER_SIDE"], v["POINTS_PER_BATCH"], v["PRED_IOU_THRESH"],
                                   v["STABILITY_SCORE_THRESH"], box_nms_thresh=v["BOX_NMS_THRESH"],
                                   crop_nms_thresh=v["BOX_NMS_THRESH"], min_mask_region_area=v["MIN_MASK_REGION_AREA"])
            segmenter = self.segmenter(parameters, context, layer, feedback)
            fields = output_fields([make_field("stability", "double")], not segmenter.source.georeferenced)
            extent = self.extent(parameters, context, layer)
            box = extent_box(segmenter.source, extent)
            planned = [(s, amg.crop_region((s.col0, s.row0), (s.height, s.width), box))
                       for s in segmenter.crops_in_extent(extent)]
            specs = [s for s, r in planned if r is not None]
            crops = [r for _, r in planned if r is not None]
            if not crops:
                raise QgsProcessingException(f"EXTENT does not overlap '{layer.name()}'.")
            feedback.pushInfo(f"{layer.name()}: {len(crops)} crops; {segmenter.estimate(specs).text}")
            records = _generate(segmenter, specs, crops, box, params, feedback)
            src, model = segmenter.source, os.path.basename(segmenter.encoder_path)
            features = []
            for r in records:
                if feedback.isCanceled():
                    raise QgsProcessingException(CANCELED)
                gt = sub_geotransform(src.geotransform, r.col0, r.row0)
                wkb = mask_to_polygons(r.mask, gt, src.crs_wkt, simplify).wkb
                features.append(object_feature(fields, wkb, layer.crs(), {
                    "label": "", "score": r.score, "stability": r.stability, "source": layer.name(),
                    "model": model, "n_positive": 1, "n_negative": 0}))
        except SegmentationError as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(f"{len(features)} objects from {len(crops)} crops.")
        return {OUTPUT: self.write_output(parameters, context, fields, layer.crs(), features)}


def _generate(segmenter: RasterSegmenter, specs: List[CropSpec], crops: List[amg.CropRegion], box: amg.Box,
              params: amg.AmgParams, feedback: QgsProcessingFeedback) -> List[amg.MaskRecord]:
    """Encode (if needed) and decode every crop in turn, then combine them (core.segment.automatic)."""
    decoder = PointDecoder(segmenter.decoder_path, segmenter.threads)
    whole: List[amg.MaskRecord] = []
    parts: List[amg.MaskRecord] = []
    for i, spec in enumerate(specs):
        encode(segmenter, spec, feedback)
        found = amg.crop_masks(
            decoder.point_runner(segmenter.embedding(spec)), crops, i,
            amg.crop_points(crops, i, params.points_per_side), box, params, feedback.isCanceled,
            lambda f, i=i: feedback.setProgress(100.0 * (i + f) / len(crops)))
        if feedback.isCanceled():
            raise QgsProcessingException(CANCELED)
        whole += found[0]
        parts += found[1]
    return amg.combine(crops, whole, parts, params)
