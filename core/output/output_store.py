"""Saved objects: a GeoPackage layer on disk, measured in metres, exportable (QGIS adapter).

Example::

    store = OutputStore("/data/session.gpkg", "objects", raster_layer.crs())
    fid = store.append(to_qgs_geometry(result.wkb), ObjectAttributes(label="roof", score=0.93,
                       source="ortho.tif", model="sam_vit_b.encoder.onnx", n_positive=2, n_negative=1))
    QgsProject.instance().addMapLayer(store.layer())
    store.export_to("/data/results.gpkg", "roofs", overwrite=False)   # LayerExistsError: ask, retry

Each saved object is committed to the GeoPackage before :meth:`OutputStore.append`
returns. On any error the file is as it was and the caller still holds the object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Tuple

from osgeo import ogr, osr
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsCsException,
    QgsDistanceArea,
    QgsGeometry,
    QgsProject,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt import sip

from .. import fs_checks as fs
from ..qgis_compat import GEOMETRY_POLYGON, WKT_PREFERRED_GDAL
from ..segment.mask_ops import EmptyMaskError
from .gpkg_io import (
    DRIVERS,
    FieldSpec,
    StoreWriteError,
    append_feature,
    check_layer_free,
    layer_info,
    layer_names,
    read_features,
    rewrite_atomically,
    write_layer,
)

LOG = logging.getLogger("ai_segmentation")

# Output layer schema, in this order.
SCHEMA: Tuple[FieldSpec, ...] = (
    ("label", ogr.OFTString),
    ("score", ogr.OFTReal),  # predicted IoU of the saved mask
    ("area_m2", ogr.OFTReal),
    ("perimeter_m", ogr.OFTReal),  # holes' outlines included
    ("source", ogr.OFTString),  # raster layer name
    ("model", ogr.OFTString),  # encoder file name
    ("n_positive", ogr.OFTInteger),
    ("n_negative", ogr.OFTInteger),
    ("created", ogr.OFTDateTime),
)
# A raster without georeferencing is segmented in pixel coordinates: its objects are measured in pixels.
PIXEL_SCHEMA: Tuple[FieldSpec, ...] = tuple(
    ({"area_m2": "area_px", "perimeter_m": "perimeter_px"}.get(name, name), kind) for name, kind in SCHEMA)
_FALLBACK_ELLIPSOID = "EPSG:7030"  # WGS 84, for a geographic CRS that names none


@dataclass(frozen=True)
class ObjectAttributes:
    """What the user and the model say about one saved object (area and perimeter are measured)."""

    label: str = ""
    score: Optional[float] = None
    source: str = ""
    model: str = ""
    n_positive: int = 0
    n_negative: int = 0
    created: Optional[datetime] = None  # None: now, in UTC


def to_qgs_geometry(wkb: bytes) -> QgsGeometry:
    """A QgsGeometry from WKB (e.g. :attr:`core.polygon_exporter.MaskPolygons.wkb`)."""
    geometry = QgsGeometry()
    geometry.fromWkb(wkb)
    return geometry


def _gdal_wkt(crs: QgsCoordinateReferenceSystem) -> str:
    return crs.toWkt(WKT_PREFERRED_GDAL) if crs.isValid() else ""


def measure(geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem,
            context: Optional[QgsCoordinateTransformContext] = None) -> Tuple[float, float]:
    """Area (m²) and perimeter (m, holes included) of a polygon in ``crs``.

    Ellipsoidal in a geographic CRS (so EPSG:4326 never gives square degrees).
    Planar in a projected CRS, converted with the CRS's own linear unit (a US
    survey foot exactly; QGIS 3.22's unit table only knows the international
    foot); a geometry without a CRS is measured planar in its own units (pixels for a raster
    without georeferencing, metres otherwise).
    """
    da = QgsDistanceArea()
    da.setSourceCrs(crs, context or QgsProject.instance().transformContext())
    if crs.isGeographic():
        if not da.setEllipsoid(crs.ellipsoidAcronym() or _FALLBACK_ELLIPSOID):
            da.setEllipsoid(_FALLBACK_ELLIPSOID)
        return da.measureArea(geometry), da.measurePerimeter(geometry)
    # Planar maths on UTM-sized coordinates loses ~1e-3 m² to cancellation: measure near the origin.
    local = QgsGeometry(geometry)
    centre = local.boundingBox().center()
    local.translate(-centre.x(), -centre.y())
    srs = osr.SpatialReference()
    unit = srs.GetLinearUnits() if crs.isValid() and srs.ImportFromWkt(_gdal_wkt(crs)) == 0 else 1.0
    return da.measureArea(local) * unit * unit, da.measurePerimeter(local) * unit


def _reprojected(geometry: QgsGeometry, src: QgsCoordinateReferenceSystem,
                 dst: QgsCoordinateReferenceSystem) -> QgsGeometry:
    if not (src.isValid() and dst.isValid()) or src == dst:
        return geometry
    out = QgsGeometry(geometry)
    try:
        out.transform(QgsCoordinateTransform(src, dst, QgsProject.instance().transformContext()))
    except QgsCsException as exc:
        raise StoreWriteError(f"Cannot reproject from {src.authid()} to {dst.authid()}: {exc}") from exc
    return out


class OutputStore:
    """One output layer (``layer_name``) in a GeoPackage at ``path``, created if needed.

    Args:
        path: GeoPackage file; created (atomically) if missing. Other layers in it are kept.
        layer_name: layer holding the objects; created with :data:`SCHEMA` if missing.
        crs: CRS of new layers (the raster's). An existing layer keeps its own CRS
            (see :attr:`crs`) and objects given in another CRS are reprojected to it.
        pixel_units: a new layer holds objects of a raster without georeferencing: it gets
            :data:`PIXEL_SCHEMA` (``area_px``, ``perimeter_px``). An existing layer keeps its schema.

    Raises:
        StoreError: read-only folder, locked or corrupt file, full disk, or an existing
            layer of that name that lacks the schema's fields.
    """

    def __init__(self, path: str, layer_name: str, crs: QgsCoordinateReferenceSystem,
                 pixel_units: bool = False) -> None:
        self._path = fs.check_output_place(str(path), "GeoPackage", StoreWriteError)
        self._layer_name = layer_name
        self._crs = QgsCoordinateReferenceSystem(crs)
        self._layer: Optional[QgsVectorLayer] = None
        self._schema = PIXEL_SCHEMA if pixel_units else SCHEMA
        if Path(self._path).exists() and layer_name in layer_names(self._path):
            wkt, fields = layer_info(self._path, layer_name)
            self._schema = PIXEL_SCHEMA if "area_px" in fields else SCHEMA
            missing = [name for name, _ in self._schema if name not in fields]
            if missing:
                raise StoreWriteError(
                    f"Layer '{layer_name}' of '{Path(self._path).name}' is not an output layer of this "
                    f"plugin (no field {', '.join(missing)}): choose another layer name.")
            if wkt:
                self._crs = QgsCoordinateReferenceSystem.fromWkt(wkt)
        else:
            wkt = _gdal_wkt(self._crs)
            rewrite_atomically(self._path, lambda ds: write_layer(ds, layer_name, wkt, self._schema, [], False))
            LOG.info("Created output layer '%s' in %s", layer_name, self._path)

    @property
    def path(self) -> str:
        return self._path

    @property
    def layer_name(self) -> str:
        return self._layer_name

    @property
    def crs(self) -> QgsCoordinateReferenceSystem:
        """CRS of the stored geometries."""
        return QgsCoordinateReferenceSystem(self._crs)

    @property
    def pixel_units(self) -> bool:
        """True when objects are measured in pixels (:data:`PIXEL_SCHEMA`), not metres."""
        return self._schema is PIXEL_SCHEMA

    def append(self, geometry: QgsGeometry, attributes: ObjectAttributes,
               crs: Optional[QgsCoordinateReferenceSystem] = None) -> int:
        """Save one object; it is on disk when this returns.

        Args:
            geometry: (Multi)Polygon, in ``crs`` (default: :attr:`crs`).
            attributes: label, score, ...; area and perimeter are measured here.

        Returns:
            The new feature's fid.

        Raises:
            EmptyMaskError: empty geometry.
            StoreError: the file could not be written (it is unchanged).
        """
        if geometry is None or geometry.isNull() or geometry.isEmpty():
            raise EmptyMaskError("The object is empty: there is nothing to save.")
        if geometry.type() != GEOMETRY_POLYGON:
            kind = QgsWkbTypes.displayString(geometry.wkbType())
            raise StoreWriteError(f"Only polygons can be saved, got {kind}.")
        geometry = _reprojected(geometry, crs or self._crs, self._crs)
        area, perimeter = measure(geometry, QgsCoordinateReferenceSystem() if self.pixel_units else self._crs)
        named = {base: own for (base, _), (own, _) in zip(SCHEMA, self._schema)}  # area_m2 -> area_px ...
        values = {
            "label": attributes.label, "score": attributes.score, named["area_m2"]: area,
            named["perimeter_m"]: perimeter, "source": attributes.source, "model": attributes.model,
            "n_positive": int(attributes.n_positive), "n_negative": int(attributes.n_negative),
            "created": attributes.created or datetime.now(timezone.utc),
        }
        fid = append_feature(self._path, self._layer_name, bytes(geometry.asWkb()), values)
        LOG.info("Saved object %d (%.1f %s) to %s", fid, area, "px" if self.pixel_units else "m²", self._path)
        self._refresh_layer()
        return fid

    def _refresh_layer(self) -> None:
        if self._layer is not None and not sip.isdeleted(self._layer):
            # The provider caches count and extent (and an export may have replaced the file):
            # reopen, so the canvas shows every object.
            self._layer.dataProvider().reloadData()
            self._layer.updateExtents()
            self._layer.triggerRepaint()

    def layer(self) -> QgsVectorLayer:
        """The output layer for display (same object on each call until removed from the project)."""
        if self._layer is None or sip.isdeleted(self._layer):
            layer = QgsVectorLayer(f"{self._path}|layername={self._layer_name}", self._layer_name, "ogr")
            if not layer.isValid():
                raise StoreWriteError(f"QGIS cannot open layer '{self._layer_name}' of '{self._path}'.")
            self._layer = layer
        return self._layer

    def close(self) -> None:
        """Forget the display layer (a Python-held layer alive at QGIS exit segfaults); later
        appends then no longer reload it, so whoever keeps it must (reloadData, triggerRepaint)."""
        self._layer = None

    def export_to(self, path: str, layer_name: str, overwrite: bool = False,
                  crs: Optional[QgsCoordinateReferenceSystem] = None) -> int:
        """Write every saved object to ``path`` atomically; returns how many.

        Args:
            path: ``.gpkg`` (an existing file keeps all its other layers), or ``.geojson`` /
                ``.shp`` (one layer per file; Shapefile truncates ``perimeter_m`` to 10
                characters and the layer takes the file's name).
            layer_name: layer to add, or to replace when ``overwrite`` is True.
            crs: target CRS (e.g. the project's); default :attr:`crs`.

        Raises:
            LayerExistsError: the layer (or single-layer file) exists and ``overwrite`` is False.
            EmptyMaskError: no object saved yet.
            StoreError: read-only folder, locked or corrupt file, full disk, bad extension.
        """
        driver = DRIVERS.get(Path(path).suffix.lower())
        if driver is None:
            raise StoreWriteError(f"Cannot export to '{Path(path).name}': use .gpkg, .geojson or .shp")
        fs.check_output_place(path, "export file", StoreWriteError)
        check_layer_free(path, layer_name, driver, overwrite)
        features = read_features(self._path, self._layer_name)
        if not features:
            raise EmptyMaskError("No object has been saved yet: there is nothing to export.")
        target = crs if crs is not None and crs.isValid() else self._crs
        if target != self._crs:
            features = [(bytes(_reprojected(to_qgs_geometry(wkb), self._crs, target).asWkb()), values)
                        for wkb, values in features]
        wkt = _gdal_wkt(target)
        rewrite_atomically(
            path, lambda ds: write_layer(ds, layer_name, wkt, self._schema, features, overwrite), driver)
        LOG.info("Exported %d objects to layer '%s' of %s", len(features), layer_name, path)
        if Path(path).resolve() == Path(self._path).resolve():
            self._refresh_layer()
        return len(features)
