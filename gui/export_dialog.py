"""The two questions "Export to GeoPackage" asks: where to, and whether to replace a layer."""

from __future__ import annotations

import os
from typing import Optional, Tuple

from qgis.core import QgsProject, QgsSettings, QgsVectorLayer
from qgis.PyQt.QtWidgets import QFileDialog, QInputDialog, QLineEdit, QMessageBox, QWidget

from ..toolbelt import log
from ..toolbelt.metadata import plugin_name
from .output import OutputManager

_LAST_DIR = "ai_segmentation/last_export_dir"


def ask_export_target(parent: QWidget, layer: Optional[QgsVectorLayer]) -> Optional[Tuple[str, str]]:
    """``(GeoPackage path, layer name)`` chosen by the user, or None if cancelled."""
    settings = QgsSettings()
    folder = settings.value(_LAST_DIR, QgsProject.instance().homePath() or os.path.expanduser("~"))
    path, _ = QFileDialog.getSaveFileName(
        parent, f"{plugin_name()}: export to GeoPackage", folder, "GeoPackage (*.gpkg)",
        options=QFileDialog.Option.DontConfirmOverwrite,  # other layers of an existing file are kept
    )
    if not path:
        return None
    if not path.lower().endswith(".gpkg"):
        path += ".gpkg"
    settings.setValue(_LAST_DIR, os.path.dirname(path))
    default = layer.name() if layer is not None else "objects"
    name, ok = QInputDialog.getText(parent, plugin_name(), "Layer name in the GeoPackage:",
                                    QLineEdit.EchoMode.Normal, default)
    if not ok or not name.strip():
        return None
    return path, name.strip()


def confirm_replace(parent: QWidget, message: str) -> bool:
    """Ask before replacing an existing layer."""
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
    answer = QMessageBox.question(parent, plugin_name(), message + "\n\nReplace it?", buttons,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def export_interactively(parent: QWidget, output: OutputManager) -> None:
    """"Export to GeoPackage": ask where, ask before replacing a layer, export in the project CRS."""
    target = ask_export_target(parent, output.layer)
    if target is None:
        return
    path, name = target
    count = output.export(path, name, lambda message: confirm_replace(parent, message), QgsProject.instance().crs())
    if count:
        log.success(f"Exported {count} objects to layer '{name}' of {path}")
