"""Plugin entry object: wires the toolbar button, Raster menu, dock, map tool, options page and
Processing provider together. No segmentation logic lives here."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Optional

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon

from .core.qgis_compat import QAction
from .toolbelt import log
from .toolbelt.log import guarded
from .toolbelt.metadata import icon_path, plugin_name
from .toolbelt.settings import Settings

MENU = "&AI Segmentation"


class AISegmentationPlugin:
    """What QGIS loads through ``classFactory``; ``unload`` undoes ``initGui`` and may run twice."""

    def __init__(self, iface: Any) -> None:
        from .core import dependency_manager

        # Packages the setup dialog installed into the profile (onnxruntime) become importable.
        dependency_manager.add_to_sys_path(dependency_manager.deps_dir(QgsApplication.qgisSettingsDirPath()))
        self.iface = iface
        self.action: Optional[QAction] = None
        self.settings_action: Optional[QAction] = None
        self.coco_action: Optional[QAction] = None
        self.similar_action: Optional[QAction] = None
        self.similar: Any = None  # gui.similar.SimilarRunner, made on first use
        self.dock: Any = None
        self.controller: Any = None
        self.options_factory: Any = None
        self.provider: Any = None
        self._log_handler: Optional[logging.Handler] = None

    # --- QGIS hooks ---

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API)
        """Register the Processing provider (also called by qgis_process, without initGui)."""
        if self.provider is not None:
            return
        from .processing_provider.provider import AISegmentationProvider

        self.provider = AISegmentationProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 (QGIS API)
        self._log_handler = log.install()
        log.set_message_bar(self.iface.messageBar())
        window = self.iface.mainWindow()
        self.action = QAction(QIcon(icon_path()), plugin_name(), window)
        self.action.setObjectName("AISegmentationAction")
        self.action.setToolTip(f"{plugin_name()}: segment objects on rasters with SAM")
        self.action.setCheckable(True)
        self.action.toggled.connect(self._toggle_dock)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.settings_action = QAction(QIcon(icon_path()), "Settings…", window)
        self.settings_action.setObjectName("AISegmentationSettingsAction")
        self.settings_action.triggered.connect(self._show_options)
        self.iface.addPluginToRasterMenu(MENU, self.settings_action)
        self.similar_action = QAction(QIcon(icon_path()), "Find Similar Objects…", window)
        self.similar_action.setObjectName("AISegmentationFindSimilarAction")
        self.similar_action.triggered.connect(self._find_similar)
        self.iface.addPluginToRasterMenu(MENU, self.similar_action)
        self.coco_action = QAction(QIcon(icon_path()), "Export training data (COCO)…", window)
        self.coco_action.setObjectName("AISegmentationCocoAction")
        self.coco_action.triggered.connect(self._export_coco)
        self.iface.addPluginToRasterMenu(MENU, self.coco_action)

        from .gui.options_page import OptionsFactory

        self.options_factory = OptionsFactory(on_saved=self._settings_saved)
        self.iface.registerOptionsWidgetFactory(self.options_factory)
        self.initProcessing()

    def unload(self) -> None:
        if self.similar is not None:
            self.similar.shutdown()
            self.similar = None
        if self.controller is not None:
            self.controller.shutdown()
            self.controller = None
        if self.dock is not None:
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        for action in (self.action, self.settings_action, self.similar_action, self.coco_action):
            if action is not None:
                self.iface.removePluginRasterMenu(MENU, action)
                action.deleteLater()
        if self.action is not None:
            self.iface.removeToolBarIcon(self.action)
        self.action = self.settings_action = self.similar_action = self.coco_action = None
        if self.options_factory is not None:
            self.iface.unregisterOptionsWidgetFactory(self.options_factory)
            self.options_factory = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self._log_handler is not None:
            log.uninstall(self._log_handler)
            log.set_message_bar(None)
            self._log_handler = None

    # --- dock ---

    def _ensure_dock(self) -> None:
        """The dock and its controller are built on first use, so QGIS starts fast."""
        if self.dock is not None:
            return
        from .ai_segmentation_dockwidget import AISegmentationDock
        from .gui.controller import SegmentationController

        self.dock = AISegmentationDock(self.iface.mainWindow())
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.controller = SegmentationController(self.iface, self.dock, Settings.load(), self._open_setup)
        self.dock.set_layer(self.iface.activeLayer() if _is_raster(self.iface.activeLayer()) else None)
        self.dock.closedStateChanged.connect(self._dock_closed)

    @guarded
    def _toggle_dock(self, checked: bool) -> None:
        if checked:
            self._ensure_dock()
            self.dock.setUserVisible(True)
        elif self.dock is not None:
            self.dock.setUserVisible(False)

    def _dock_closed(self, closed: bool) -> None:
        if self.action is not None:
            self.action.setChecked(not closed)

    @guarded
    def _find_similar(self, *_args: object) -> None:
        """Ask what to look for (gui.similar holds the logic), then search in a background task."""
        from .gui.similar import FindSimilarDialog, SimilarRunner

        if self.similar is None:
            self.similar = SimilarRunner(self.iface)
        active = self.iface.activeLayer()
        raster = self.dock.raster_layer() if self.dock is not None else (active if _is_raster(active) else None)
        dialog = FindSimilarDialog(self.iface.mainWindow(), raster, None if _is_raster(active) else active)
        if dialog.exec():
            self.similar.start(dialog.choice())

    # --- settings and setup ---

    @guarded
    def _show_options(self, *_args: object) -> None:
        self.iface.showOptionsDialog(self.iface.mainWindow(), currentPage=plugin_name())

    @guarded
    def _export_coco(self, *_args: object) -> None:
        from .gui.coco_dialog import open_export_dialog

        open_export_dialog(self.iface)

    def _settings_saved(self, settings: Settings) -> None:
        if self.controller is not None:
            self.controller.apply_settings(settings)

    def _open_setup(self) -> None:
        """Open the first-run setup dialog (imported on demand: most sessions never need it)."""
        from .gui.setup.setup_dialog import SetupDialog

        dialog = SetupDialog(self.iface.mainWindow(), models_dir=Settings.load().models_dir)
        dialog.modelsChanged.connect(self._models_chosen)
        dialog.exec()

    @guarded
    def _models_chosen(self, encoder: str, decoder: str) -> None:
        settings = replace(Settings.load(), encoder_path=encoder, decoder_path=decoder)
        settings.save()
        self._settings_saved(settings)


def _is_raster(layer: Any) -> bool:
    from qgis.core import QgsRasterLayer

    return isinstance(layer, QgsRasterLayer)
