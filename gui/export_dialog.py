""""Export…": one dialog for the file (GeoPackage, GeoJSON, Shapefile), the layer name and the CRS,
and the question before a layer is replaced ("No" asks for another name)."""

from __future__ import annotations

import os
from typing import Optional

from qgis.core import QgsCoordinateReferenceSystem, QgsProject, QgsSettings
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QMessageBox,
    QWidget,
)

from ..core.output.gpkg_io import DRIVERS, LayerExistsError
from ..toolbelt import log
from ..toolbelt.metadata import plugin_name
from .output import OutputManager
from .params import CRS_LAYER, CRS_PROJECT, ExportChoice
from .text import plural

_LAST_DIR = "ai_segmentation/last_export_dir"
FILTERS = "GeoPackage (*.gpkg);;GeoJSON (*.geojson);;ESRI Shapefile (*.shp)"


def _crs_text(crs: Optional[QgsCoordinateReferenceSystem]) -> str:
    if crs is None or not crs.isValid():
        return "none"
    return crs.authid() or crs.description()


class ExportDialog(QDialog):
    """The export form; :meth:`choice` reads it. Widgets only."""

    def __init__(self, parent: Optional[QWidget], layer_name: str, layer_crs: Optional[QgsCoordinateReferenceSystem],
                 previous: Optional[ExportChoice] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{plugin_name()}: export")
        form = QFormLayout(self)
        self.file_widget = QgsFileWidget()
        self.file_widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.file_widget.setFilter(FILTERS)
        self.file_widget.setConfirmOverwrite(False)  # other layers of an existing GeoPackage are kept
        self.file_widget.setDefaultRoot(QgsSettings().value(_LAST_DIR, QgsProject.instance().homePath()
                                                            or os.path.expanduser("~")))
        form.addRow("File", self.file_widget)
        self.name_edit = QLineEdit(layer_name)
        self.name_edit.setToolTip("Layer name inside the GeoPackage (GeoJSON and Shapefile take the file's name)")
        form.addRow("Layer name", self.name_edit)
        self.crs_combo = QComboBox()
        self.crs_combo.addItem(f"Layer CRS ({_crs_text(layer_crs)})", CRS_LAYER)
        self.crs_combo.addItem(f"Project CRS ({_crs_text(QgsProject.instance().crs())})", CRS_PROJECT)
        self.crs_combo.setToolTip("The layer's CRS is the raster's: coordinates are written as segmented")
        form.addRow("CRS", self.crs_combo)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self.file_widget.fileChanged.connect(self._update)
        if previous is not None:
            self.file_widget.setFilePath(previous.path)
            self.name_edit.setText(previous.layer_name)
            self.crs_combo.setCurrentIndex(max(0, self.crs_combo.findData(previous.crs)))
        self._update()

    def _update(self, *_args: object) -> None:
        path = self.file_widget.filePath().strip()
        self.name_edit.setEnabled(not path or os.path.splitext(path)[1].lower() in ("", ".gpkg"))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(path))

    def choice(self) -> Optional[ExportChoice]:
        """What the form says, ``.gpkg`` added to a path without a known extension; None if incomplete."""
        path = self.file_widget.filePath().strip()
        if not path:
            return None
        if os.path.splitext(path)[1].lower() not in DRIVERS:
            path += ".gpkg"
        name = self.name_edit.text().strip()
        if os.path.splitext(path)[1].lower() != ".gpkg":
            name = os.path.splitext(os.path.basename(path))[0]  # one layer per file, named after it
        if not name:
            return None
        return ExportChoice(path, name, self.crs_combo.currentData())


def ask_export_target(parent: Optional[QWidget], output: OutputManager,
                      previous: Optional[ExportChoice] = None) -> Optional[ExportChoice]:
    """The user's :class:`ExportChoice`, or None if cancelled."""
    layer = output.layer
    dialog = ExportDialog(parent, previous.layer_name if previous else (layer.name() if layer else "objects"),
                          output.crs, previous)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    choice = dialog.choice()
    if choice is not None:
        QgsSettings().setValue(_LAST_DIR, os.path.dirname(choice.path))
    return choice


def confirm_replace(parent: Optional[QWidget], message: str) -> bool:
    """Ask before replacing an existing layer or file; No means "choose another name"."""
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
    answer = QMessageBox.question(parent, plugin_name(), message + "\n\nReplace it? (No: choose another name)",
                                  buttons, QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def export_interactively(parent: Optional[QWidget], output: OutputManager) -> int:
    """"Export…": ask where and in which CRS (the layer's by default), ask before replacing a layer,
    and ask again for another name when the answer is No. Returns how many objects were written."""
    choice = ask_export_target(parent, output)
    while choice is not None:
        crs = QgsProject.instance().crs() if choice.crs == CRS_PROJECT else None
        try:
            count = output.export(choice.path, choice.layer_name, False, crs)
        except LayerExistsError as exc:
            if not confirm_replace(parent, str(exc)):
                choice = ask_export_target(parent, output, choice)
                continue
            count = output.export(choice.path, choice.layer_name, True, crs)
        written = _crs_text(crs if crs is not None else output.crs)
        log.success(f"Exported {plural(count, 'object')} to layer '{choice.layer_name}' of {choice.path} "
                    f"({written})")
        return count
    return 0
