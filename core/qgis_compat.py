"""The one place where QGIS 3.22 ... 4.x and Qt 5 / Qt 6 differ, resolved once at import.

Everything else in the plugin uses scoped enums (``Qt.MouseButton.LeftButton``,
``Qgis.MessageLevel.Warning``) that every supported version has. The names here
are the few that moved between versions: the newest spelling is used where it
exists, the 3.22 one otherwise, so no other module checks a version.
"""

from __future__ import annotations

from typing import Any, Tuple

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsField,
    QgsMapLayerProxyModel,
    QgsProcessing,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QMetaType, QVariant

try:  # Qt 6 moved QAction and QShortcut to QtGui
    from qgis.PyQt.QtGui import QAction, QShortcut
except ImportError:
    from qgis.PyQt.QtWidgets import QAction, QShortcut


def _newest(*spellings: Tuple[Any, str, str]) -> Any:
    """The first ``scope.Enum.Member`` of ``spellings`` that this QGIS has (newest first)."""
    for scope, enum_name, member in spellings:
        value = getattr(getattr(scope, enum_name, None), member, None)
        if value is not None:
            return value
    raise ImportError(f"this QGIS has none of {[f'{e}.{m}' for _, e, m in spellings]}")


# Qgis.GeometryType / Qgis.WkbType: 3.30; before, in QgsWkbTypes.
GEOMETRY_POINT = _newest((Qgis, "GeometryType", "Point"), (QgsWkbTypes, "GeometryType", "PointGeometry"))
GEOMETRY_POLYGON = _newest((Qgis, "GeometryType", "Polygon"), (QgsWkbTypes, "GeometryType", "PolygonGeometry"))
WKB_MULTIPOLYGON = _newest((Qgis, "WkbType", "MultiPolygon"), (QgsWkbTypes, "Type", "MultiPolygon"))

# Qgis.LayerFilter: 3.34; before, QgsMapLayerProxyModel.Filter.
LAYER_FILTER_RASTER = _newest((Qgis, "LayerFilter", "RasterLayer"),
                              (QgsMapLayerProxyModel, "Filter", "RasterLayer"))
LAYER_FILTER_POLYGON = _newest((Qgis, "LayerFilter", "PolygonLayer"),
                               (QgsMapLayerProxyModel, "Filter", "PolygonLayer"))

# Qgis.ProcessingSourceType / Qgis.ProcessingNumberParameterType / Qgis.CrsWktVariant: 3.36.
SOURCE_VECTOR_POINT = _newest((Qgis, "ProcessingSourceType", "VectorPoint"),
                              (QgsProcessing, "SourceType", "TypeVectorPoint"))
SOURCE_VECTOR_POLYGON = _newest((Qgis, "ProcessingSourceType", "VectorPolygon"),
                                (QgsProcessing, "SourceType", "TypeVectorPolygon"))
NUMBER_DOUBLE = _newest((Qgis, "ProcessingNumberParameterType", "Double"),
                        (QgsProcessingParameterNumber, "Type", "Double"))
NUMBER_INTEGER = _newest((Qgis, "ProcessingNumberParameterType", "Integer"),
                         (QgsProcessingParameterNumber, "Type", "Integer"))
WKT_PREFERRED_GDAL = _newest((Qgis, "CrsWktVariant", "PreferredGdal"),
                             (QgsCoordinateReferenceSystem, "WktVariant", "WKT_PREFERRED_GDAL"))

# QgsField takes a QMetaType.Type from 3.38 on (the QVariant.Type constructor is deprecated there).
_FIELDS_TAKE_METATYPE = Qgis.QGIS_VERSION_INT >= 33800
_FIELD_TYPES = {
    "string": ("QString", "String"),
    "double": ("Double", "Double"),
    "int": ("Int", "Int"),
    "int64": ("LongLong", "LongLong"),
    "datetime": ("QDateTime", "DateTime"),
}


def make_field(name: str, kind: str) -> QgsField:
    """A ``QgsField`` of ``kind``: "string", "double", "int", "int64" or "datetime"."""
    metatype, variant = _FIELD_TYPES[kind]
    if _FIELDS_TAKE_METATYPE:
        return QgsField(name, getattr(QMetaType.Type, metatype))
    return QgsField(name, getattr(QVariant.Type, variant))


__all__ = [
    "GEOMETRY_POINT", "GEOMETRY_POLYGON", "LAYER_FILTER_POLYGON", "LAYER_FILTER_RASTER", "NUMBER_DOUBLE",
    "NUMBER_INTEGER", "SOURCE_VECTOR_POINT", "SOURCE_VECTOR_POLYGON", "WKB_MULTIPOLYGON", "WKT_PREFERRED_GDAL",
    "QAction", "QShortcut", "make_field",
]
