"""Thin QGIS adapter: raster layers -> :class:`RasterSource`, canvas coordinates -> raster CRS.

Call from the GUI thread (it touches layers and the project); the objects it
returns are plain data that a QgsTask may use.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsCsException,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from ..errors import SegmentationError
from ..segment.segmenter import MapPrompt
from .geo import Extent
from .raster_source import RasterSource


class LayerError(SegmentationError):
    """The layer cannot be segmented (not a raster file read by GDAL)."""


def source_from_layer(layer: QgsRasterLayer, bands: Optional[Sequence[int]] = None) -> RasterSource:
    """Describe a GDAL raster layer; the layer's CRS (possibly set by the user) wins over the file's."""
    if layer is None or not layer.isValid():
        raise LayerError("choose a valid raster layer")
    if layer.providerType() != "gdal":
        raise LayerError(f"'{layer.name()}' comes from the '{layer.providerType()}' provider; only rasters "
                         "read by GDAL (files, GeoPackage rasters, VRT) can be segmented")
    uri = layer.source().split("|")[0]  # QGIS appends "|option:..." to some GDAL sources
    crs = layer.crs()
    return RasterSource.open(uri, bands, crs.toWkt() if crs.isValid() else None)


def _transform(from_crs: QgsCoordinateReferenceSystem, source: RasterSource,
               context: Optional[QgsCoordinateTransformContext]) -> Optional[QgsCoordinateTransform]:
    """Transform to the raster CRS, or None when coordinates already are in it (or pixel frame)."""
    if not source.georeferenced or not source.crs_wkt or not from_crs.isValid():
        return None
    dest = QgsCoordinateReferenceSystem.fromWkt(source.crs_wkt)
    if not dest.isValid() or dest == from_crs:
        return None
    return QgsCoordinateTransform(from_crs, dest, context or QgsProject.instance().transformContext())


Points = Tuple[Tuple[float, float], ...]


def points_to_raster_crs(points: Sequence[Tuple[float, float]], from_crs: QgsCoordinateReferenceSystem,
                         source: RasterSource,
                         context: Optional[QgsCoordinateTransformContext] = None) -> Points:
    """``(x, y)`` points in ``from_crs`` (e.g. the canvas CRS) -> the raster CRS."""
    tr = _transform(from_crs, source, context)
    if tr is None:
        return tuple((float(x), float(y)) for x, y in points)
    out = []
    for x, y in points:
        try:
            p = tr.transform(QgsPointXY(float(x), float(y)))
        except QgsCsException as exc:
            raise SegmentationError(f"the point ({x:.6g}, {y:.6g}) cannot be projected to the raster's "
                                    f"CRS: {exc}") from None
        out.append((p.x(), p.y()))
    return tuple(out)


def extent_to_raster_crs(extent: Extent, from_crs: QgsCoordinateReferenceSystem, source: RasterSource,
                         context: Optional[QgsCoordinateTransformContext] = None) -> Extent:
    """A ``(xmin, ymin, xmax, ymax)`` extent in ``from_crs`` -> its bounding box in the raster CRS."""
    tr = _transform(from_crs, source, context)
    if tr is None:
        return tuple(float(v) for v in extent)  # type: ignore[return-value]
    try:
        r = tr.transformBoundingBox(QgsRectangle(*extent))
    except QgsCsException as exc:
        raise SegmentationError(f"the extent {tuple(extent)} cannot be projected to the raster's CRS: "
                                f"{exc}") from None
    return r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum()


def prompt_from_canvas(points: Sequence[Tuple[float, float]], labels: Sequence[int],
                       box: Optional[Extent], canvas_crs: QgsCoordinateReferenceSystem, source: RasterSource,
                       context: Optional[QgsCoordinateTransformContext] = None) -> MapPrompt:
    """Clicks and a drawn box in the canvas CRS -> a :class:`MapPrompt` in the raster CRS."""
    return MapPrompt(
        points=points_to_raster_crs(points, canvas_crs, source, context),
        labels=tuple(int(v) for v in labels),
        box=extent_to_raster_crs(box, canvas_crs, source, context) if box is not None else None,
    )
