"""*Export training data (COCO)…*: the Processing dialog of ``aisegmentation:export_coco``, pre-filled.

The dialog is QGIS's own algorithm dialog, so the export runs in the background with progress, a
log and Cancel, exactly as from the Toolbox; this module only picks the layers to start with.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import QgsMapLayer, QgsProject, QgsRasterLayer, QgsVectorLayer

from ..core.errors import SegmentationError
from ..core.qgis_compat import GEOMETRY_POLYGON

ALGORITHM_ID = "aisegmentation:export_coco"


def _is_polygon_layer(layer: Optional[QgsMapLayer]) -> bool:
    return isinstance(layer, QgsVectorLayer) and layer.isValid() and layer.geometryType() == GEOMETRY_POLYGON


def _is_raster(layer: Optional[QgsMapLayer]) -> bool:
    return isinstance(layer, QgsRasterLayer) and layer.isValid()


def default_parameters(active: Optional[QgsMapLayer], project: QgsProject) -> Dict[str, Any]:
    """INPUT and POLYGONS to start with: the active layer where it fits, else the first raster / polygon
    layer of the project (in layer-tree order); nothing where the project has none."""
    layers = [node.layer() for node in project.layerTreeRoot().findLayers()]
    params: Dict[str, Any] = {}
    raster = active if _is_raster(active) else next((lyr for lyr in layers if _is_raster(lyr)), None)
    polygons = active if _is_polygon_layer(active) else next((lyr for lyr in layers if _is_polygon_layer(lyr)),
                                                             None)
    if raster is not None:
        params["INPUT"] = raster.id()
    if polygons is not None:
        params["POLYGONS"] = polygons.id()
    return params


def open_export_dialog(iface: Any) -> Any:
    """Show the export dialog (non-modal, like the Toolbox's) and return it."""
    from processing import createAlgorithmDialog

    dialog = createAlgorithmDialog(ALGORITHM_ID, default_parameters(iface.activeLayer(), QgsProject.instance()))
    if dialog is None:
        raise SegmentationError(f"The Processing algorithm {ALGORITHM_ID} is not available: enable the "
                                "Processing plugin (Plugins > Manage and Install Plugins), then try again.")
    dialog.show()
    dialog.raise_()
    return dialog
