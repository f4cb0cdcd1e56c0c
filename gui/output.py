"""Where saved masks go: the chosen output layer, or a new one in the plugin's GeoPackage."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsProject,
    QgsProviderRegistry,
    QgsVectorLayer,
)
from qgis.PyQt import sip

from ..core import fs_checks as fs
from ..core.output.gpkg_io import StoreWriteError, layer_names
from ..core.output.output_store import ObjectAttributes, OutputStore, to_qgs_geometry

STORE_NAME = "ai_segmentation.gpkg"


def default_store_path() -> str:
    """Beside the project when it is saved, else in the QGIS profile (the save message names it)."""
    home = QgsProject.instance().homePath()
    folder = home or os.path.join(QgsApplication.qgisSettingsDirPath(), "ai_segmentation")
    return os.path.join(folder, STORE_NAME)


def gpkg_location(layer: QgsVectorLayer) -> Tuple[str, str]:
    """``(path, layer name)`` of a GeoPackage layer; raises StoreWriteError for other layers."""
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = parts.get("path") or ""
    if layer.providerType() != "ogr" or not path.lower().endswith(".gpkg"):
        raise StoreWriteError(
            f"'{layer.name()}' is not a GeoPackage layer: choose an output layer saved by this plugin, "
            "or leave 'Save to' empty to create one"
        )
    name = parts.get("layerName") or (layer_names(path) or [""])[0]
    return path, name


def unique_layer_name(path: str, base: str) -> str:
    """``base``, or ``base_2``, ``base_3``... if the GeoPackage or the project already has it (two
    project layers of one name could not be told apart in 'Save to')."""
    taken = set(layer_names(path)) if os.path.exists(path) else set()
    taken |= {layer.name() for layer in QgsProject.instance().mapLayers().values()}
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


@dataclass(frozen=True)
class SavedObject:
    """Where one save went: feature ``fid`` of layer ``layer_name`` in GeoPackage ``path``."""

    fid: int
    layer_name: str
    path: str
    new_layer: bool

    @property
    def message(self) -> str:
        """E.g. ``"Saved object 3 to layer 'ortho_objects' of /data/ai_segmentation.gpkg"``."""
        where = f"new layer '{self.layer_name}' in" if self.new_layer else f"layer '{self.layer_name}' of"
        return f"Saved object {self.fid} to {where} {self.path}"


class OutputManager:
    """Holds the :class:`OutputStore` of the output layer and saves objects into it."""

    def __init__(self, store_path: Callable[[], str] = default_store_path) -> None:
        self._store_path = store_path
        self._store: Optional[OutputStore] = None
        self._layer: Optional[QgsVectorLayer] = None  # the project layer showing the store

    @property
    def layer(self) -> Optional[QgsVectorLayer]:
        if self._layer is not None and sip.isdeleted(self._layer):
            self._layer = None
        return self._layer

    @property
    def path(self) -> Optional[str]:
        """GeoPackage of the output layer, or None before the first save."""
        return self._store.path if self._store is not None else None

    def use_layer(self, layer: Optional[QgsVectorLayer]) -> None:
        """Save into ``layer`` (checked now); None: a new layer is created on the next save."""
        if layer is None:
            self._store, self._layer = None, None
            return
        if layer is self.layer and self._store is not None:
            return
        path, name = gpkg_location(layer)
        self._store = OutputStore(path, name, layer.crs())
        self._layer = layer

    def _ensure(self, base_name: str, crs: QgsCoordinateReferenceSystem,
                pixel_units: bool) -> Tuple[OutputStore, bool]:
        """The output store, and whether a new layer was created for it now."""
        if self._store is not None and self.layer is not None:
            if self._store.pixel_units != pixel_units:
                units = "pixels" if self._store.pixel_units else "metres"
                raise StoreWriteError(
                    f"the output layer '{self._store.layer_name}' measures objects in {units}, but this raster "
                    f"{'has' if self._store.pixel_units else 'has no'} georeferencing: leave 'Save to' empty "
                    "to create a layer for it")
            return self._store, False
        path = self._store_path()
        fs.check_folder(os.path.dirname(path), "output folder", create=True, error=StoreWriteError)
        store = OutputStore(path, unique_layer_name(path, base_name), crs, pixel_units)
        layer = store.layer()
        QgsProject.instance().addMapLayer(layer)
        store.close()  # the project owns the layer now
        self._store, self._layer = store, layer
        return store, True

    def save(self, wkb: bytes, crs: QgsCoordinateReferenceSystem, attributes: ObjectAttributes,
             base_name: str, pixel_units: bool = False) -> SavedObject:
        """Append one object (WKB in ``crs``); a new output layer is named after ``base_name``.

        ``pixel_units``: the object comes from a raster without georeferencing (measured in pixels).
        """
        store, created = self._ensure(base_name, crs, pixel_units)
        fid = store.append(to_qgs_geometry(wkb), attributes, crs)
        layer = self.layer
        if layer is not None:
            layer.dataProvider().reloadData()
            layer.updateExtents()
            layer.triggerRepaint()
        return SavedObject(fid, store.layer_name, store.path, created)

    def export(self, path: str, layer_name: str, overwrite: bool,
               crs: Optional[QgsCoordinateReferenceSystem] = None) -> int:
        """Export the output layer to ``path`` (GeoPackage, GeoJSON or Shapefile) in ``crs``
        (default: the layer's own).

        Raises:
            LayerExistsError: the layer or file exists and ``overwrite`` is False (ask, then retry).
        """
        if self._store is None:
            raise StoreWriteError("Nothing to export yet: save a mask first, or choose an output layer.")
        return self._store.export_to(path, layer_name, overwrite=overwrite, crs=crs)

    @property
    def crs(self) -> Optional[QgsCoordinateReferenceSystem]:
        """CRS of the output layer, or None before the first save."""
        return self._store.crs if self._store is not None else None

    def close(self) -> None:
        self._store, self._layer = None, None

