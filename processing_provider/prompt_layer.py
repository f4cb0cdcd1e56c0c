"""Prompt layers -> objects: points (with an optional 0/1 ``label`` field) and boxes (polygons'
bounding boxes), grouped by a field, in the raster CRS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransformContext,
    QgsFeatureRequest,
    QgsFeatureSource,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ..core.qgis_compat import GEOMETRY_POINT, GEOMETRY_POLYGON
from ..core.segment.segmenter import MapPrompt

LABEL_FIELD = "label"  # 1 include, 0 exclude; missing or NULL: include


@dataclass
class PromptObject:
    """The prompts of one object, in the raster CRS.

    Attributes:
        key: the group value (None for a NULL group), or the feature id without a group field.
        points, labels: ``(x, y)`` points and their 1/0 labels.
        box: ``(xmin, ymin, xmax, ymax)`` of the object's polygon, or None.
        feature_ids: the prompt features it comes from, for messages.
    """

    key: Any
    points: List[Tuple[float, float]] = field(default_factory=list)
    labels: List[int] = field(default_factory=list)
    box: Optional[Tuple[float, float, float, float]] = None
    feature_ids: List[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        ids = ", ".join(str(i) for i in self.feature_ids[:5]) + ("…" if len(self.feature_ids) > 5 else "")
        return f"object {self.key!r} (prompt feature {ids})"

    def prompt(self) -> MapPrompt:
        return MapPrompt(tuple(self.points), tuple(self.labels), self.box)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, QVariant) and value.isNull())


def _label(value: Any, fid: int) -> int:
    if _is_null(value):
        return 1
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number not in (0.0, 1.0):
        raise QgsProcessingException(
            f"Prompt feature {fid}: field '{LABEL_FIELD}' is {value!r}; use 1 (include) or 0 (exclude).")
    return int(number)


def read_objects(source: QgsFeatureSource, group_field: str, raster_crs: QgsCoordinateReferenceSystem,
                 context: QgsCoordinateTransformContext, feedback: QgsProcessingFeedback) -> List[PromptObject]:
    """Objects in feature order. With ``group_field``, features sharing a value form one object
    (NULL values stay apart); without it every feature is one object. Raises on a second box in
    an object, a bad label or a geometry that is neither point nor polygon."""
    request = QgsFeatureRequest()
    if raster_crs.isValid():
        request.setDestinationCrs(raster_crs, context)
    label_index = source.fields().lookupField(LABEL_FIELD)
    objects: Dict[Any, PromptObject] = {}
    for feature in source.getFeatures(request):
        if feedback.isCanceled():
            break
        fid = feature.id()
        geometry = feature.geometry()
        if geometry.isNull() or geometry.isEmpty():
            feedback.pushWarning(f"Prompt feature {fid} has no geometry: skipped.")
            continue
        value = feature[group_field] if group_field else fid
        key = ("null", fid) if _is_null(value) else value
        obj = objects.setdefault(key, PromptObject(None if _is_null(value) else value))
        obj.feature_ids.append(fid)
        kind = geometry.type()
        if kind == GEOMETRY_POINT:
            label = _label(feature.attributes()[label_index], fid) if label_index >= 0 else 1
            for vertex in geometry.vertices():
                obj.points.append((vertex.x(), vertex.y()))
                obj.labels.append(label)
        elif kind == GEOMETRY_POLYGON:
            if obj.box is not None:
                raise QgsProcessingException(
                    f"{obj.name} has more than one polygon: an object takes at most one box.")
            r = geometry.boundingBox()
            obj.box = (r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum())
        else:
            raise QgsProcessingException(
                f"Prompt feature {fid} is a {QgsWkbTypes.displayString(geometry.wkbType())}: "
                "use points (clicks) or polygons (boxes).")
    return list(objects.values())
