"""What the plugin draws on the map canvas: prompt markers and the mask preview.

Prompts and masks live in the raster CRS; everything here reprojects them to
the canvas CRS at draw time, so they stay right when the canvas CRS differs
from the raster's, or changes while they are shown.
"""

from __future__ import annotations

import contextlib
from typing import List, Optional, Sequence

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
)
from qgis.gui import QgsMapCanvas, QgsMapCanvasItem, QgsRubberBand, QgsVertexMarker
from qgis.PyQt.QtCore import QPointF, QRectF, Qt
from qgis.PyQt.QtGui import QColor, QImage, QPainter, QPolygonF, QTransform

from ..core.qgis_compat import GEOMETRY_POLYGON
from ..core.raster.geo import apply_geotransform
from .prompting.prompts import INCLUDE, PromptSet

INCLUDE_COLOR = QColor(30, 200, 60)
EXCLUDE_COLOR = QColor(230, 40, 40)
BOX_COLOR = QColor(255, 170, 0)
MASK_COLOR = QColor(0, 150, 255)
REFINING_COLOR = QColor(255, 176, 0)  # amber: a mask that is still being refined
MASK_ALPHA = 110  # of 255: the raster stays readable under the preview
GRID = 4  # the preview image is warped in GRID x GRID patches, each by its own projective map


def to_canvas_transform(
    canvas: QgsMapCanvas, crs: QgsCoordinateReferenceSystem
) -> Optional[QgsCoordinateTransform]:
    """Transform from ``crs`` to the canvas CRS, or None when either is unknown or they are equal."""
    dest = canvas.mapSettings().destinationCrs()
    if not crs.isValid() or not dest.isValid() or crs == dest:
        return None
    return QgsCoordinateTransform(crs, dest, QgsProject.instance().transformContext())


def _remove(canvas: QgsMapCanvas, item: Optional[object]) -> None:
    if item is not None and canvas.scene() is not None:
        canvas.scene().removeItem(item)


class PromptMarkers:
    """Green include and red exclude markers, and the outline of the box."""

    def __init__(self, canvas: QgsMapCanvas) -> None:
        self.canvas = canvas
        self._markers: List[QgsVertexMarker] = []
        self._box: Optional[QgsRubberBand] = None

    def show(self, prompts: PromptSet, crs: QgsCoordinateReferenceSystem) -> None:
        """Draw ``prompts`` (raster CRS ``crs``), replacing what was drawn before."""
        self.clear()
        xform = to_canvas_transform(self.canvas, crs)
        for (x, y), label in zip(prompts.points, prompts.labels):
            point = QgsPointXY(x, y)
            try:
                point = xform.transform(point) if xform else point
            except QgsCsException:
                continue  # a point the canvas CRS cannot show is simply not drawn
            marker = QgsVertexMarker(self.canvas)
            color = INCLUDE_COLOR if label == INCLUDE else EXCLUDE_COLOR
            marker.setIconType(QgsVertexMarker.IconType.ICON_CIRCLE)
            marker.setIconSize(16)
            marker.setPenWidth(2)
            marker.setColor(QColor(255, 255, 255))  # a white ring shows on any imagery and preview
            marker.setFillColor(color)
            marker.setCenter(point)
            self._markers.append(marker)
        if prompts.box is not None:
            band = QgsRubberBand(self.canvas, GEOMETRY_POLYGON)
            band.setStrokeColor(BOX_COLOR)
            band.setFillColor(QColor(0, 0, 0, 0))
            band.setWidth(2)
            band.setLineStyle(Qt.PenStyle.DashLine)
            band.setToGeometry(QgsGeometry.fromRect(QgsRectangle(*prompts.box)), crs if xform else None)
            self._box = band

    @property
    def marker_count(self) -> int:
        return len(self._markers)

    def clear(self) -> None:
        for marker in self._markers:
            _remove(self.canvas, marker)
        self._markers = []
        _remove(self.canvas, self._box)
        self._box = None


def mask_image(mask: np.ndarray, color: QColor = MASK_COLOR) -> QImage:
    """``[H, W]`` bool mask -> premultiplied RGBA QImage: translucent fill, opaque outline."""
    mask = np.ascontiguousarray(mask, bool)
    h, w = mask.shape
    code = mask.view(np.uint8).copy()  # 0 outside, 1 outline, 2 inside
    code[1:-1, 1:-1] += mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    lut = np.zeros((3, 4), np.uint8)
    for i, alpha in ((1, 255), (2, MASK_ALPHA)):
        lut[i] = [c * alpha // 255 for c in (color.red(), color.green(), color.blue())] + [alpha]  # premultiplied
    rgba = lut.view(np.uint32).ravel()[code]
    image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888_Premultiplied)
    return image.copy()  # own the pixels: rgba is freed when this returns


class MaskOverlay(QgsMapCanvasItem):
    """Paints a mask given on a raster pixel grid (GDAL geotransform, raster CRS) over the canvas.

    The image is split into ``GRID x GRID`` patches and each patch is drawn with
    the projective map of its four reprojected corners, which follows a curved
    reprojection closely and costs a few milliseconds per repaint.
    """

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self._image: Optional[QImage] = None
        self._corners: Optional[np.ndarray] = None  # [GRID+1, GRID+1, 2] map coords, canvas CRS
        self._source: Optional[tuple] = None  # (geotransform, crs, (h, w))
        self.setZValue(900)  # under rubber bands and markers (1000), over the map
        self.hide()
        canvas.destinationCrsChanged.connect(self._reproject)

    def set_mask(
        self, mask: np.ndarray, geotransform: Sequence[float], crs: QgsCoordinateReferenceSystem,
        image: Optional[QImage] = None,
    ) -> None:
        """Show ``mask`` (``[H, W]`` bool on the grid of ``geotransform``, in ``crs``), drawn as
        ``image`` when given (its :func:`mask_image`, made beforehand in a worker thread)."""
        self._image = image if image is not None else mask_image(mask)
        self._source = (tuple(geotransform), QgsCoordinateReferenceSystem(crs), mask.shape)
        self._reproject()
        self.show()

    def clear(self) -> None:
        self._image = None
        self._source = None
        self._corners = None
        self.hide()

    @property
    def has_mask(self) -> bool:
        return self._image is not None

    def _reproject(self) -> None:
        if self._source is None:
            return
        gt, crs, (h, w) = self._source
        cols = np.linspace(0.0, w, GRID + 1)
        rows = np.linspace(0.0, h, GRID + 1)
        cc, rr = np.meshgrid(cols, rows)
        x, y = apply_geotransform(gt, cc, rr)
        xform = to_canvas_transform(self.canvas, crs)
        if xform is not None:
            try:
                pts = [xform.transform(QgsPointXY(float(a), float(b))) for a, b in zip(x.ravel(), y.ravel())]
            except QgsCsException:
                self.hide()
                return
            x = np.array([p.x() for p in pts]).reshape(x.shape)
            y = np.array([p.y() for p in pts]).reshape(y.shape)
        self._corners = np.stack([x, y], axis=-1)
        self.setRect(QgsRectangle(float(x.min()), float(y.min()), float(x.max()), float(y.max())))
        self.update()

    def paint(self, painter: QPainter, _option: object = None, _widget: object = None) -> None:
        """Qt calls the three-argument form: one Python override serves both overloads."""
        if self._image is None or self._corners is None:
            return
        origin = self.pos()
        device = [
            [self.toCanvasCoordinates(QgsPointXY(*c)) - origin for c in row] for row in self._corners
        ]
        w, h = self._image.width(), self._image.height()
        painter.save()
        base = painter.worldTransform()
        for j in range(GRID):
            for i in range(GRID):
                src = QRectF(
                    QPointF(w * i / GRID, h * j / GRID), QPointF(w * (i + 1) / GRID, h * (j + 1) / GRID)
                )
                src_quad = QPolygonF([src.topLeft(), src.topRight(), src.bottomRight(), src.bottomLeft()])
                quad = QPolygonF([device[j][i], device[j][i + 1], device[j + 1][i + 1], device[j + 1][i]])
                xf = QTransform()
                if QTransform.quadToQuad(src_quad, quad, xf):
                    painter.setWorldTransform(xf * base)  # Qt composes left to right: patch, then item
                    painter.drawImage(src, self._image, src)
        painter.restore()

    def dispose(self) -> None:
        """Disconnect from the canvas and leave its scene (call before dropping the item)."""
        with contextlib.suppress(TypeError):  # already disconnected
            self.canvas.destinationCrsChanged.disconnect(self._reproject)
        _remove(self.canvas, self)
