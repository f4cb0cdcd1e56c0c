"""The dock: what it shows, the typed requests it emits, and the flows it drives (encode, export, setup,
settings) with the real controller, tiny models and files."""

from __future__ import annotations

import sys
import types
from dataclasses import replace

import numpy as np
import pytest
import test_maptool
import test_plugin
from osgeo import gdal, osr
from qgis.core import Qgis, QgsApplication, QgsProject, QgsRasterLayer, QgsRectangle, QgsSettings, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from test_maptool import ORIGIN, PIXEL, click, raster_point, to_pixel, wait_result
from test_plugin import pkg

# Fixtures shared with the plugin and map tool tests.
plugin_package = test_plugin.plugin_package
qgis_window = test_plugin.qgis_window
loaded_plugin = test_plugin.loaded_plugin
models_dir = test_maptool.models_dir
session = test_maptool.session


def write_bands(path, bands: int, size=(64, 48)) -> str:
    w, h = size
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, bands, gdal.GDT_UInt16)
    ds.SetGeoTransform((ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(bands)
    for b in range(bands):
        ds.GetRasterBand(b + 1).WriteArray(rng.integers(0, 4000, (h, w), dtype=np.uint16))
    ds = None
    return str(path)


@pytest.fixture
def dock(plugin_package, qtbot):
    widget = pkg("ai_segmentation_dockwidget").AISegmentationDock()
    qtbot.addWidget(widget)
    return widget


def test_band_choice_shows_only_for_more_than_three_bands(dock, tmp_path, qgis_new_project, qtbot):
    rgb = QgsRasterLayer(write_bands(tmp_path / "rgb.tif", 3), "rgb")
    multi = QgsRasterLayer(write_bands(tmp_path / "multi.tif", 5), "multi")
    QgsProject.instance().addMapLayers([rgb, multi])
    dock.set_layer(rgb)
    assert dock.ui.band_row.isHidden() and dock.source_choice().bands is None

    with qtbot.waitSignal(dock.source_changed) as blocker:
        dock.set_layer(multi)
    assert blocker.args[0].layer_id == multi.id() and blocker.args[0].bands == (1, 2, 3)
    assert not dock.ui.band_row.isHidden()
    assert [s.maximum() for s in dock.ui.band_spins] == [5, 5, 5]
    with qtbot.waitSignal(dock.source_changed) as blocker:
        dock.ui.band_spins[2].setValue(5)
    choice = blocker.args[0]
    assert type(choice).__name__ == "SourceChoice" and choice.bands == (1, 2, 5)


def test_refinement_is_emitted_as_refine_params(dock, qtbot):
    RefineParams = pkg("core.mask_ops").RefineParams  # noqa: N806
    dock.set_refine(RefineParams(2.0, 30, 40, False))  # settings defaults: shown, not emitted
    assert dock.refine_params() == RefineParams(2.0, 30, 40, False)
    with qtbot.waitSignal(dock.refine_changed) as blocker:
        dock.ui.fill_holes_spin.setValue(100)
    assert blocker.args[0] == RefineParams(simplify_px=2.0, fill_holes_px=100, min_area_px=40)
    with qtbot.waitSignal(dock.refine_changed) as blocker:
        dock.ui.largest_only_check.setChecked(True)
    assert blocker.args[0].largest_only is True
    dock.ui.simplify_spin.clear()  # the reset button returns to the settings' default
    assert dock.ui.simplify_spin.value() == 2.0


def test_candidates_and_buttons_reflect_state(dock, qtbot):
    dock.set_candidates([0.91, 0.52, 0.33], current=1)
    buttons = dock.ui.candidate_buttons
    assert not dock.ui.candidate_row.isHidden()
    assert [b.text() for b in buttons] == ["Mask 1 · 0.91", "Mask 2 · 0.52", "Mask 3 · 0.33"]
    assert [b.isChecked() for b in buttons] == [False, True, False]
    with qtbot.waitSignal(dock.mask_chosen) as blocker:
        buttons[2].click()
    assert blocker.args == [2]
    dock.set_candidates([0.9])
    assert dock.ui.candidate_row.isHidden()
    dock.set_prompt_summary(0, 0, False)
    assert not dock.ui.undo_button.isEnabled() and not dock.ui.clear_button.isEnabled()
    dock.set_prompt_summary(2, 1, True)
    assert dock.ui.prompt_label.text() == "Prompts: 2 include, 1 exclude, box"
    dock.set_encoding(True, -1.0, "Encoding the clicked area…")
    assert dock.ui.progress.maximum() == 0 and not dock.ui.encode_button.isEnabled()
    dock.set_encoding(False)
    assert dock.ui.progress.isHidden() and dock.ui.encode_button.isEnabled()
    with qtbot.waitSignal(dock.encode_requested) as blocker:
        dock.ui.scope_combo.setCurrentIndex(1)
        dock.ui.encode_button.click()
    assert blocker.args[0] == pkg("gui.params").EncodeRequest(scope="visible")


def big_raster(s, size=(1800, 1500)):
    from test_maptool import write_raster

    layer = QgsRasterLayer(write_raster(s.tmp_path / "big.tif", size=size), "big")
    QgsProject.instance().addMapLayer(layer)
    s.dock.set_layer(layer)
    s.canvas.setExtent(layer.extent())
    return layer


def test_encode_image_whole_raster_then_clicks_need_no_encoding(session, qtbot):
    s = session
    big_raster(s)
    s.qtbot.waitUntil(lambda: "crops to encode" in s.dock.ui.estimate_label.text(), timeout=20000)
    n = len(s.controller.segmenter().crops_in_extent(None))
    assert n > 2
    assert s.dock.ui.estimate_label.text().startswith(f"{n} of {n} crops to encode")
    with qtbot.waitSignal(s.controller.encoder.extent_done, timeout=120000) as blocker:
        s.dock.ui.encode_button.click()
        assert not s.dock.ui.progress.isHidden() and not s.dock.ui.cancel_button.isHidden()
    assert blocker.args[0] is True
    assert s.iface.messageBar().get_messages(Qgis.Success)[-1].endswith(f"{n} of {n} crops encoded")
    assert s.dock.ui.progress.isHidden()
    assert s.dock.ui.estimate_label.text().startswith(f"0 of {n} crops to encode")
    click(s, to_pixel(s.canvas, *raster_point(1500.5, 1200.5)))
    assert wait_result(s).seg.crop.scale >= 1


def test_visible_extent_scope_and_cancel(session, qtbot):
    s = session
    big_raster(s)
    s.canvas.setExtent(QgsRectangle(*raster_point(0, 600), *raster_point(600, 0)))
    s.dock.ui.scope_combo.setCurrentIndex(1)  # visible extent
    s.qtbot.waitUntil(lambda: "crops to encode" in s.dock.ui.estimate_label.text(), timeout=20000)
    visible = int(s.dock.ui.estimate_label.text().split(" of ")[0])
    assert 1 <= visible < len(s.controller.segmenter().crops_in_extent(None))
    s.dock.ui.scope_combo.setCurrentIndex(0)
    with qtbot.waitSignal(s.controller.encoder.extent_done, timeout=120000) as blocker:
        s.dock.ui.encode_button.click()
        s.dock.ui.cancel_button.click()
    ok, message = blocker.args
    assert ok is False and message.startswith("Encoding cancelled")
    assert s.iface.messageBar().get_messages(Qgis.Warning)[-1].endswith(message)
    qtbot.waitUntil(lambda: s.dock.ui.progress.isHidden())
    left, total = s.dock.ui.estimate_label.text().split(" crops")[0].split(" of ")
    assert int(left) >= int(total) - 1  # at most the crop running when cancelled was kept


def test_export_to_geopackage_asks_before_replacing(session, monkeypatch, tmp_path):
    s = session
    click(s, to_pixel(s.canvas, *raster_point(200.5, 200.5)))
    wait_result(s)
    s.dock.ui.save_button.click()
    target = tmp_path / "results.gpkg"
    dialogs = pkg("gui.export_dialog")
    answers = []
    monkeypatch.setattr(dialogs, "ask_export_target", lambda parent, layer: (str(target), "objects"))
    monkeypatch.setattr(dialogs, "confirm_replace", lambda parent, message: answers.pop(0))
    s.dock.ui.export_button.click()
    exported = QgsVectorLayer(f"{target}|layername=objects", "x", "ogr")
    assert exported.isValid() and exported.featureCount() == 1
    del exported

    click(s, to_pixel(s.canvas, *raster_point(400.5, 200.5)))
    wait_result(s)
    s.dock.ui.save_button.click()
    answers.append(False)  # "replace?" -> no: nothing written
    s.dock.ui.export_button.click()
    assert QgsVectorLayer(f"{target}|layername=objects", "x", "ogr").featureCount() == 1
    answers.append(True)
    s.dock.ui.export_button.click()
    assert QgsVectorLayer(f"{target}|layername=objects", "x", "ogr").featureCount() == 2
    assert s.iface.messageBar().get_messages(Qgis.Success)[-1].endswith(f"2 objects to layer 'objects' of {target}")


def test_output_chooser_rejects_a_layer_that_is_not_an_output_layer(session, tmp_path):
    s = session
    memory = QgsVectorLayer("Polygon?crs=EPSG:32633", "scratch", "memory")
    QgsProject.instance().addMapLayer(memory)
    s.dock.ui.output_combo.setLayer(memory)
    assert "is not a GeoPackage layer" in s.iface.messageBar().get_messages(Qgis.Warning)[-1]
    assert s.dock.ui.output_combo.currentLayer() is None  # back to "new layer"


@pytest.fixture
def clean_settings():
    """Keep the user's stored plugin settings out of (and unchanged by) the test."""
    s = QgsSettings()
    keys = [k for k in s.allKeys() if k.startswith("ai_segmentation/")]
    saved = {k: s.value(k) for k in keys}
    for k in keys:
        s.remove(k)
    yield
    for k in [k for k in s.allKeys() if k.startswith("ai_segmentation/")]:
        s.remove(k)
    for k, v in saved.items():
        s.setValue(k, v)


def test_setup_button_opens_setup_dialog(loaded_plugin, monkeypatch, qgis_iface, tmp_path, clean_settings):
    loaded_plugin.action.trigger()
    module = f"{pkg('toolbelt.metadata').__package__.split('.')[0]}.gui.setup_dialog"

    from qgis.PyQt.QtCore import QObject, pyqtSignal

    encoder = loaded_plugin.controller.models.encoder
    opened = []

    class FakeSetupDialog(QObject):  # the real one is modal: exec() would block the test
        modelsChanged = pyqtSignal(str, str)  # noqa: N815 (the dialog's signal)

        def __init__(self, parent, models_dir):
            super().__init__()
            opened.append((parent, models_dir))

        def exec(self):
            self.modelsChanged.emit(str(chosen_encoder), str(chosen_decoder))  # "Use these models"
            return 0

    chosen_encoder, chosen_decoder = tmp_path / "mine.encoder.onnx", tmp_path / "mine.decoder.onnx"
    chosen_encoder.write_bytes(b"x" * 100)
    chosen_decoder.write_bytes(b"x" * 100)
    monkeypatch.setitem(sys.modules, module, types.SimpleNamespace(SetupDialog=FakeSetupDialog))
    loaded_plugin.dock.ui.setup_button.click()
    assert opened == [(qgis_iface.mainWindow(), loaded_plugin.controller.settings.models_dir)]
    models = loaded_plugin.controller.models
    assert (models.encoder, models.decoder) == (str(chosen_encoder), str(chosen_decoder)) != (encoder, None)
    assert "mine.encoder.onnx + mine.decoder.onnx" in loaded_plugin.dock.ui.model_status.text()


def test_options_page_stores_typed_settings_and_applies_them(session, clean_settings, tmp_path):
    s = session
    Settings = pkg("toolbelt.settings").Settings  # noqa: N806
    applied = []
    page = pkg("gui.options_page").OptionsPage(None, on_saved=applied.append)
    assert page.settings().hover_preview is False  # off by default
    page.models_dir.setFilePath(s.controller.settings.models_dir)
    page.cache_dir.setFilePath(str(tmp_path / "cache2"))
    page.cache_mb.setValue(512)
    page.threads.setValue(2)
    page.simplify.setValue(0.5)
    page.min_area.setValue(25)
    page.hover.setChecked(True)
    page.apply()
    stored = Settings.load()
    assert stored == applied[0]
    assert (stored.cache_max_mb, stored.threads, stored.simplify_px, stored.min_area_px) == (512, 2, 0.5, 25)
    assert stored.cache_dir == str(tmp_path / "cache2") and stored.hover_preview is True

    s.controller.apply_settings(stored)
    assert s.controller.tool.hover_enabled is True
    assert s.dock.refine_params().min_area_px == 25
    page.deleteLater()


def test_settings_survive_garbage_in_storage(clean_settings, plugin_package):
    q = QgsSettings()
    q.setValue("ai_segmentation/threads", "many")
    q.setValue("ai_segmentation/min_area_px", -5)
    q.setValue("ai_segmentation/hover_preview", "true")
    settings = pkg("toolbelt.settings").Settings.load()
    assert settings.threads == 0 and settings.min_area_px == 16 and settings.hover_preview is True
    assert settings.encoder_threads is None
    assert settings == replace(settings)  # a frozen, comparable dataclass


def test_no_task_is_left_running(qtbot):
    qtbot.waitUntil(lambda: QgsApplication.taskManager().countActiveTasks() == 0, timeout=60000)


def test_shortcuts_only_act_while_the_tool_is_active(session):
    s = session
    s.qtbot.keyClick(s.canvas, Qt.Key_S)  # nothing to save: a message, not an error
    assert "nothing to save yet" in s.iface.messageBar().get_messages(Qgis.Warning)[-1]
    s.dock.ui.start_button.click()  # stop segmenting
    assert s.canvas.mapTool() is not s.controller.tool
    count = len(s.iface.messageBar().get_messages(Qgis.Warning))
    s.qtbot.keyClick(s.canvas, Qt.Key_S)
    assert len(s.iface.messageBar().get_messages(Qgis.Warning)) == count
