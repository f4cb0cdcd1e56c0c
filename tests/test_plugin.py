"""The plugin loads, shows its toolbar button, Raster menu entry and dock, and unloads cleanly,
through qgis.utils exactly as QGIS does it.

Also holds the fixtures the dock and map tool tests share: the repository as a plugin package
named ``ai_segmentation`` (QGIS imports plugins as packages), and a stub iface whose toolbar and
Raster menu are real Qt widgets, as in QGIS (pytest-qgis's iface only records those calls).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import qgis.utils
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QAction, QMenu, QToolBar

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ai_segmentation"


@pytest.fixture(scope="session")
def plugin_package(tmp_path_factory):
    """Import name of the repository as a QGIS plugin package (a symlink in a temp plugins dir)."""
    plugins = tmp_path_factory.mktemp("plugins")
    (plugins / PACKAGE).symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(plugins))
    qgis.utils.plugin_paths.insert(0, str(plugins))
    qgis.utils.updateAvailablePlugins()  # QGIS does this at start; unloading needs it
    assert PACKAGE in qgis.utils.available_plugins
    yield PACKAGE
    qgis.utils.plugin_paths.remove(str(plugins))
    qgis.utils.updateAvailablePlugins()
    sys.path.remove(str(plugins))


def pkg(module: str):
    """Import a module of the plugin package, e.g. ``pkg("gui.controller")``."""
    return importlib.import_module(f"{PACKAGE}.{module}")


class QgisWindowParts:
    """What QgisApp does for addToolBarIcon / addPluginToRasterMenu / addDockWidget, on real widgets."""

    def __init__(self, iface) -> None:
        self.window = iface.mainWindow()
        self.window.show()  # docks are only "user visible" in a shown window
        self.toolbar = QToolBar("Plugins", self.window)
        self.window.addToolBar(self.toolbar)
        self.raster_menu = self.window.menuBar().addMenu("&Raster")
        self.option_factories: list = []

    def submenu(self, name: str):
        return next((a.menu() for a in self.raster_menu.actions() if a.menu() and a.text() == name), None)

    def addToolBarIcon(self, action: QAction) -> None:  # noqa: N802 (QgisInterface API)
        self.toolbar.addAction(action)

    def removeToolBarIcon(self, action: QAction) -> None:  # noqa: N802
        self.toolbar.removeAction(action)

    def addPluginToRasterMenu(self, name: str, action: QAction) -> None:  # noqa: N802
        menu = self.submenu(name)
        if menu is None:
            menu = QMenu(name, self.raster_menu)
            self.raster_menu.addMenu(menu)
        menu.addAction(action)

    def removePluginRasterMenu(self, name: str, action: QAction) -> None:  # noqa: N802
        menu = self.submenu(name)
        if menu is not None:
            menu.removeAction(action)
            if not menu.actions():  # QGIS drops the emptied submenu too
                self.raster_menu.removeAction(menu.menuAction())

    def registerOptionsWidgetFactory(self, factory) -> None:  # noqa: N802
        self.option_factories.append(factory)

    def unregisterOptionsWidgetFactory(self, factory) -> None:  # noqa: N802
        self.option_factories.remove(factory)

    def addDockWidget(self, area, dock) -> None:  # noqa: N802
        self.window.addDockWidget(area, dock)

    def removeDockWidget(self, dock) -> None:  # noqa: N802
        self.window.removeDockWidget(dock)

    def plugin_actions(self) -> list:
        """Plugin actions reachable from the toolbar or the Raster menu."""
        found = [a for a in self.toolbar.actions() if a.objectName().startswith("AISegmentation")]
        for a in self.raster_menu.actions():
            if a.menu():
                found += [b for b in a.menu().actions() if b.objectName().startswith("AISegmentation")]
        return found

    def close(self) -> None:
        self.window.hide()
        self.window.removeToolBar(self.toolbar)
        self.window.menuBar().removeAction(self.raster_menu.menuAction())
        self.toolbar.deleteLater()
        self.raster_menu.deleteLater()


@pytest.fixture
def qgis_window(qgis_iface, monkeypatch):
    """The pytest-qgis iface with a real Plugins toolbar, Raster menu and dock area."""
    parts = QgisWindowParts(qgis_iface)
    for name in ("addToolBarIcon", "removeToolBarIcon", "addPluginToRasterMenu", "removePluginRasterMenu",
                 "registerOptionsWidgetFactory", "unregisterOptionsWidgetFactory", "addDockWidget",
                 "removeDockWidget"):
        monkeypatch.setattr(qgis_iface, name, getattr(parts, name), raising=False)
    yield parts
    parts.close()


@pytest.fixture
def loaded_plugin(plugin_package, qgis_window, qgis_new_project):
    """The plugin loaded and started through qgis.utils; unloaded afterwards if a test did not."""
    assert qgis.utils.loadPlugin(plugin_package)
    assert qgis.utils.startPlugin(plugin_package)
    yield qgis.utils.plugins[plugin_package]
    if plugin_package in qgis.utils.active_plugins:
        assert qgis.utils.unloadPlugin(plugin_package)


def test_load_shows_toolbar_button_and_raster_menu_entry(loaded_plugin, qgis_window):
    actions = qgis_window.plugin_actions()
    names = sorted(a.objectName() for a in actions)
    assert names == ["AISegmentationAction", "AISegmentationAction", "AISegmentationCocoAction",
                     "AISegmentationFindSimilarAction", "AISegmentationSettingsAction"]
    assert qgis_window.toolbar.actions()[-1] is loaded_plugin.action
    menu = qgis_window.submenu("&AI Segmentation")
    assert [a.text() for a in menu.actions()] == ["AI Segmentation", "Settings…", "Find Similar Objects…",
                                                  "Export training data (COCO)…"]
    assert len(qgis_window.option_factories) == 1
    assert qgis_window.option_factories[0].title() == "AI Segmentation"


def test_processing_provider_is_registered_and_removed(plugin_package, qgis_window, qgis_new_project):
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    assert qgis.utils.loadPlugin(plugin_package) and qgis.utils.startPlugin(plugin_package)
    provider = registry.providerById("aisegmentation")
    assert provider is not None and provider.algorithms()
    qgis.utils.plugins[plugin_package].initProcessing()  # QGIS may call it again: no second provider
    assert [p.id() for p in registry.providers()].count("aisegmentation") == 1
    assert qgis.utils.unloadPlugin(plugin_package)
    assert registry.providerById("aisegmentation") is None


def test_name_and_version_come_from_metadata(loaded_plugin):
    from configparser import ConfigParser

    meta = ConfigParser(interpolation=None)
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    metadata = pkg("toolbelt.metadata")
    assert metadata.plugin_name() == meta["general"]["name"] == loaded_plugin.action.text()
    assert metadata.plugin_version() == meta["general"]["version"]


def test_action_opens_dock_and_unload_removes_everything(loaded_plugin, qgis_window, qgis_iface, qtbot):
    window = qgis_iface.mainWindow()
    loaded_plugin.action.trigger()
    dock = loaded_plugin.dock
    assert dock is not None and dock.isUserVisible()
    assert window.dockWidgetArea(dock) == Qt.RightDockWidgetArea
    tool = loaded_plugin.controller.tool
    action, controller = loaded_plugin.action, loaded_plugin.controller
    items_before = len(qgis_iface.mapCanvas().scene().items())

    assert qgis.utils.unloadPlugin(PACKAGE)
    qtbot.wait(10)  # deleteLater
    assert qgis_window.plugin_actions() == []
    assert qgis_window.submenu("&AI Segmentation") is None
    assert qgis_window.option_factories == []
    assert sip.isdeleted(action) and sip.isdeleted(dock)
    assert qgis_iface.mapCanvas().mapTool() is not tool
    assert len(qgis_iface.mapCanvas().scene().items()) < items_before  # the mask overlay is gone
    assert controller.encoder.busy is False
    assert f"{PACKAGE}.ai_segmentation_plugin" not in sys.modules  # qgis.utils dropped the plugin's modules


def test_unload_twice_is_safe(loaded_plugin, qgis_window):
    loaded_plugin.action.trigger()
    loaded_plugin.unload()
    loaded_plugin.unload()
    assert qgis_window.plugin_actions() == []


def test_closing_the_dock_unchecks_the_action(loaded_plugin):
    loaded_plugin.action.trigger()
    assert loaded_plugin.action.isChecked()
    loaded_plugin.dock.close()
    assert not loaded_plugin.action.isChecked()
    loaded_plugin.action.trigger()
    assert loaded_plugin.dock.isUserVisible()


def test_log_facade_forwards_python_logging_and_pushes_messages(loaded_plugin, qgis_iface):
    import logging

    from qgis.core import Qgis, QgsApplication

    got = []

    def on_message(message, tag, level):
        got.append((message, tag, level))

    QgsApplication.messageLog().messageReceived.connect(on_message)
    try:
        logging.getLogger("ai_segmentation").warning("disk %s is full", "/tmp")
        log = pkg("toolbelt.log")
        log.warning("Something for the user", details="Traceback (most recent call last): ...")
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(on_message)
    assert ("ai_segmentation: disk /tmp is full", "AI Segmentation", Qgis.Warning) in got
    assert any("Traceback" in m and t == "AI Segmentation" for m, t, _ in got)
    bar = qgis_iface.messageBar().get_messages(Qgis.Warning)
    assert bar[-1] == "AI Segmentation:Something for the user"  # no traceback in the bar


def test_guarded_slot_turns_exceptions_into_messages(loaded_plugin, qgis_iface):
    from qgis.core import Qgis

    log = pkg("toolbelt.log")
    errors = pkg("core.errors")

    @log.guarded
    def slot_user_error():
        raise errors.ModelError("the decoder file is truncated")

    @log.guarded
    def slot_bug():
        return {}["missing"]

    assert slot_user_error() is None
    assert slot_bug() is None
    assert qgis_iface.messageBar().get_messages(Qgis.Warning)[-1].endswith("the decoder file is truncated")
    critical = qgis_iface.messageBar().get_messages(Qgis.Critical)[-1]
    assert "KeyError" in critical and "Traceback" not in critical
