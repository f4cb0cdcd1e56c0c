"""The dock: what it shows, the typed requests it emits, and the flows it drives (encode, export, setup,
settings) with the real controller, tiny models and files."""

from __future__ import annotations

import sys
import types
from dataclasses import replace
from pathlib import Path

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


def write_bands(path, bands: int, size=(64, 48), descriptions=()) -> str:
    w, h = size
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, bands, gdal.GDT_UInt16)
    ds.SetGeoTransform((ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(bands)
    for b in range(bands):
        ds.GetRasterBand(b + 1).WriteArray(rng.integers(0, 4000, (h, w), dtype=np.uint16))
    for b, text in enumerate(descriptions):
        ds.GetRasterBand(b + 1).SetDescription(text)
    ds = None
    return str(path)


@pytest.fixture
def dock(plugin_package, qtbot):
    widget = pkg("ai_segmentation_dockwidget").AISegmentationDock()
    qtbot.addWidget(widget)
    return widget


def test_band_choice_shows_only_for_more_than_three_bands(dock, tmp_path, qgis_new_project, qtbot):
    rgb = QgsRasterLayer(write_bands(tmp_path / "rgb.tif", 3), "rgb")
    names = ("blue", "green", "red", "nir", "swir")
    multi = QgsRasterLayer(write_bands(tmp_path / "multi.tif", 5, descriptions=names), "multi")
    QgsProject.instance().addMapLayers([rgb, multi])
    dock.set_layer(rgb)
    assert dock.ui.band_row.isHidden() and dock.source_choice().bands is None

    with qtbot.waitSignal(dock.source_changed) as blocker:
        dock.set_layer(multi)
    assert blocker.args[0].layer_id == multi.id() and blocker.args[0].bands == (1, 2, 3)
    assert not dock.ui.band_row.isHidden()
    combo = dock.ui.band_combos[2]
    # the band descriptions stored in the file, not bare numbers
    assert [combo.itemText(i) for i in range(combo.count())] == [f"Band {i + 1}: {n}" for i, n in enumerate(names)]
    assert [c.currentText() for c in dock.ui.band_combos] == ["Band 1: blue", "Band 2: green", "Band 3: red"]
    with qtbot.waitSignal(dock.source_changed) as blocker:
        combo.setCurrentIndex(4)
    choice = blocker.args[0]
    assert type(choice).__name__ == "SourceChoice" and choice.bands == (1, 2, 5)


def test_refinement_is_emitted_as_refine_params(dock, qtbot):
    RefineParams = pkg("core.segment.mask_ops").RefineParams  # noqa: N806
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
    assert [b.text() for b in buttons] == ["1 · 0.91", "2 · 0.52", "3 · 0.33"]
    assert [b.isChecked() for b in buttons] == [False, True, False]
    with qtbot.waitSignal(dock.mask_chosen) as blocker:
        buttons[2].click()
    assert blocker.args == [2]
    dock.set_candidates([0.9])
    assert dock.ui.candidate_row.isHidden()
    dock.set_prompt_summary(0, 0, False)
    assert not dock.ui.undo_button.isEnabled() and not dock.ui.clear_button.isEnabled()
    dock.set_can_clear(True)
    assert dock.ui.clear_button.isEnabled()
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


def estimate_counts(s):
    """``(to encode, total)`` from the panel's estimate line."""
    left, total = s.dock.ui.estimate_label.text().split(" crops")[0].split(" of ")
    return int(left), int(total)


def test_encode_image_prepares_what_clicks_need_and_the_estimate_follows(session, qtbot):
    s = session
    big_raster(s)
    s.qtbot.waitUntil(lambda: "crops to encode" in s.dock.ui.estimate_label.text(), timeout=20000)
    segmenter = s.controller.segmenter()
    grid, support = segmenter.crops_in_extent(None), segmenter.crops_in_extent(None, support=True)
    n = len(grid) + len(support)
    assert len(grid) == 4 and len(support) == 1
    assert estimate_counts(s) == (n, n)
    assert "1 coarser crop of them serve objects larger" in s.dock.ui.estimate_label.text()
    seen = []
    s.controller.encoder.progress.connect(lambda *_: seen.append(estimate_counts(s)[0]))
    with qtbot.waitSignal(s.controller.encoder.extent_done, timeout=120000) as blocker:
        s.dock.ui.encode_button.click()
        assert not s.dock.ui.progress.isHidden() and not s.dock.ui.cancel_button.isHidden()
    assert blocker.args[0] is True
    assert s.iface.messageBar().get_messages(Qgis.Success)[-1].endswith(f"{n} of {n} crops encoded")
    assert s.dock.ui.progress.isHidden()
    assert seen == sorted(seen, reverse=True) and len(set(seen)) >= 3  # it counted down while encoding
    assert estimate_counts(s) == (0, n)
    # A click whose mask the first crop cuts is refined on a prepared crop: nothing is encoded.
    statuses, results = [], []
    flow = s.controller.session.flow
    flow.status.connect(statuses.append)
    flow.result.connect(lambda seg, index, image, final: results.append((seg.crop, final)))
    s.controller.encoder.progress.connect(lambda *_: pytest.fail("a click encoded a crop"))
    click(s, to_pixel(s.canvas, *raster_point(700.5, 500.5)))
    s.qtbot.waitUntil(lambda: bool(results) and results[-1][1], timeout=30000)
    assert results[0][1] is False and results[-1][0] in support  # the tiny model's blob fills its crop
    assert any(t.startswith("Refining on a coarser crop (step 1 of at most 3)") for t in statuses)
    assert wait_result(s).seg.crop == results[-1][0] and flow.extra_encodes == 0


def test_refinement_encodes_a_bounded_number_of_crops_and_says_so(session, qtbot):
    s = session
    big_raster(s, size=(5000, 5000))
    flow = s.controller.session.flow
    statuses, finals = [], []
    flow.status.connect(statuses.append)
    flow.result.connect(lambda seg, index, image, final: finals.append(final))
    click(s, to_pixel(s.canvas, *raster_point(2500.5, 2500.5)))
    first = wait_result(s)  # the first mask shows before any refinement
    assert finals == [False] and s.controller.session.overlay.has_mask
    qtbot.waitUntil(lambda: not flow.busy, timeout=120000)
    assert flow.extra_encodes == 2 and finals == [False, False, True]
    encodes = [t for t in statuses if t.startswith("Refining: encoding")]
    assert [t.split(", ")[-1] for t in encodes] == [f"extra encode {i} of at most 2 for this click…" for i in (1, 2)]
    assert "may be cut at a crop edge: 2 extra encodes is the most a click makes" in s.dock.ui.status_label.text()
    assert wait_result(s).seg.crop.scale > first.seg.crop.scale
    s.qtbot.keyClick(s.canvas, Qt.Key_Escape)
    assert s.dock.ui.status_label.isHidden()


def test_visible_extent_scope_and_cancel(session, qtbot):
    s = session
    big_raster(s)
    s.canvas.setExtent(QgsRectangle(*raster_point(0, 600), *raster_point(600, 0)))
    s.dock.ui.scope_combo.setCurrentIndex(1)  # visible extent
    s.qtbot.waitUntil(lambda: "crops to encode" in s.dock.ui.estimate_label.text(), timeout=20000)
    visible = estimate_counts(s)[0]
    assert 1 <= visible < len(s.controller.segmenter().crops_in_extent(None))
    s.canvas.setExtent(QgsRectangle(*raster_point(0, 1500), *raster_point(1800, 0)))  # pan out: it follows
    s.qtbot.waitUntil(lambda: estimate_counts(s)[0] > visible, timeout=5000)
    s.dock.ui.scope_combo.setCurrentIndex(0)
    shown = []  # the panel when the cancel is taken: said at once, before the crop being encoded stops
    s.controller.encoder.cancelling.connect(
        lambda: shown.append((s.dock.ui.progress_label.text(), s.dock.ui.cancel_button.isEnabled())))
    with qtbot.waitSignal(s.controller.encoder.extent_done, timeout=120000) as blocker:
        s.dock.ui.encode_button.click()
        s.dock.ui.cancel_button.click()
    assert shown == [("Cancelling… (the crop being encoded is stopped first)", False)]
    ok, message = blocker.args
    assert ok is False and message.startswith("Encoding cancelled")
    assert s.iface.messageBar().get_messages(Qgis.Warning)[-1].endswith(message)
    qtbot.waitUntil(lambda: s.dock.ui.progress.isHidden())
    left, total = estimate_counts(s)
    assert int(left) >= int(total) - 1  # at most the crop running when cancelled was kept


def test_cancel_message_counts_the_crop_finished_as_cancel_came(session, qtbot):
    s = session
    big_raster(s)
    s.qtbot.waitUntil(lambda: "crops to encode" in s.dock.ui.estimate_label.text(), timeout=20000)
    segmenter = s.controller.segmenter()
    real_encode = segmenter.encode

    def encode_then_cancel(crop, is_canceled=lambda: False):
        real_encode(crop, is_canceled)  # the real encode writes the crop to the cache...
        s.controller.encoder._extent_task.cancel()  # ...and the user cancels just then

    segmenter.encode = encode_then_cancel
    with qtbot.waitSignal(s.controller.encoder.extent_done, timeout=120000) as blocker:
        s.dock.ui.encode_button.click()
    assert blocker.args == [False, "Encoding cancelled; 1 crop was encoded and is kept in the cache."]
    qtbot.waitUntil(lambda: s.dock.ui.progress.isHidden())
    assert estimate_counts(s)[0] == estimate_counts(s)[1] - 1


def test_estimate_follows_a_processing_encode(session, qtbot, clean_settings):
    from qgis.core import QgsProcessingAlgRunnerTask, QgsProcessingContext, QgsProcessingFeedback

    s = session
    layer = big_raster(s)
    s.qtbot.waitUntil(lambda: "crops to encode" in s.dock.ui.estimate_label.text(), timeout=20000)
    before = estimate_counts(s)
    replace(s.controller.settings).save()  # Processing reads the stored settings: the same cache
    provider = pkg("processing_provider.provider").AISegmentationProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        alg = QgsApplication.processingRegistry().createAlgorithmById("aisegmentation:encode")
        encoder = str(next(p for p in Path(s.controller.settings.models_dir).iterdir()
                           if "encoder" in p.name))
        context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
        context.setProject(QgsProject.instance())
        task = QgsProcessingAlgRunnerTask(alg, {"INPUT": layer.id(), "ENCODER": encoder}, context, feedback)
        with qtbot.waitSignal(task.executed, timeout=120000) as blocker:
            QgsApplication.taskManager().addTask(task)
        assert blocker.args[0] is True
        segmenter = s.controller.segmenter()
        n = len(segmenter.crops_in_extent(None)) + len(segmenter.crops_in_extent(None, support=True))
        assert before == (n, n)
        qtbot.waitUntil(lambda: estimate_counts(s) == (0, n), timeout=5000)  # Processing encoded the support crop too
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)


def test_export_writes_the_layer_crs_unless_asked_and_offers_three_formats(session, monkeypatch, tmp_path):
    from qgis.core import QgsCoordinateReferenceSystem
    from qgis.PyQt.QtWidgets import QDialog

    s = session
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    click(s, to_pixel(s.canvas, *raster_point(200.5, 200.5)))
    wait_result(s)
    s.dock.ui.save_button.click()
    saved = next(s.controller.output.layer.getFeatures()).geometry()
    dialogs = pkg("gui.export_dialog")
    dialog = dialogs.ExportDialog(None, "ortho_objects", s.controller.output.crs)
    assert dialog.crs_combo.currentData() == "layer" and dialog.crs_combo.currentText() == "Layer CRS (EPSG:32633)"
    assert dialog.crs_combo.itemText(1) == "Project CRS (EPSG:3857)"
    assert all(f"*.{ext}" in dialog.file_widget.filter() for ext in ("gpkg", "geojson", "shp"))
    dialog.deleteLater()
    answers = []

    def accept(self):  # the modal dialog, filled in as the user would
        path, crs_index = answers.pop(0)
        self.file_widget.setFilePath(str(path))
        self.crs_combo.setCurrentIndex(crs_index)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(dialogs.ExportDialog, "exec", accept)
    answers.append((tmp_path / "results.gpkg", 0))  # the defaults: the layer's CRS
    s.dock.ui.export_button.click()
    exported = QgsVectorLayer(f"{tmp_path / 'results.gpkg'}|layername=ortho_objects", "x", "ogr")
    assert exported.crs().authid() == "EPSG:32633" and exported.featureCount() == 1
    assert next(exported.getFeatures()).geometry().equals(saved)
    assert s.iface.messageBar().get_messages(Qgis.Success)[-1].endswith(
        f"Exported 1 object to layer 'ortho_objects' of {tmp_path / 'results.gpkg'} (EPSG:32633)")
    for name, crs in (("results.geojson", "EPSG:3857"), ("results.shp", "EPSG:32633")):
        answers.append((tmp_path / name, 1 if crs == "EPSG:3857" else 0))
        s.dock.ui.export_button.click()
        other = QgsVectorLayer(str(tmp_path / name), "x", "ogr")
        assert other.isValid() and other.featureCount() == 1 and other.crs().authid() == crs
    del exported, other


def test_export_answering_no_to_replace_asks_for_another_name(session, monkeypatch, tmp_path):
    s = session
    Choice = pkg("gui.params").ExportChoice  # noqa: N806
    target = tmp_path / "results.gpkg"
    dialogs = pkg("gui.export_dialog")
    choices, answers, asked = [], [], []

    def ask(parent, output, previous=None):
        asked.append(previous)
        return choices.pop(0) if choices else None

    monkeypatch.setattr(dialogs, "ask_export_target", ask)
    monkeypatch.setattr(dialogs, "confirm_replace", lambda parent, message: answers.pop(0))
    for x in (200.5, 400.5):
        click(s, to_pixel(s.canvas, *raster_point(x, 200.5)))
        wait_result(s)
        s.dock.ui.save_button.click()
        choices.append(Choice(str(target), "objects"))
        if x > 300:  # the second export: "objects" exists; No, then another name
            answers.append(False)
            choices.append(Choice(str(target), "objects_2"))
        s.dock.ui.export_button.click()
    assert asked[-1] == Choice(str(target), "objects")  # asked again, with what was chosen before
    assert QgsVectorLayer(f"{target}|layername=objects", "x", "ogr").featureCount() == 1
    assert QgsVectorLayer(f"{target}|layername=objects_2", "x", "ogr").featureCount() == 2
    choices.append(Choice(str(target), "objects"))
    answers.append(True)  # replace
    s.dock.ui.export_button.click()
    assert QgsVectorLayer(f"{target}|layername=objects", "x", "ogr").featureCount() == 2
    assert s.iface.messageBar().get_messages(Qgis.Success)[-1].startswith("AI Segmentation:Exported 2 objects")


def test_saved_objects_name_their_file_and_never_share_a_layer_name(session, tmp_path):
    from qgis.core import QgsCoordinateReferenceSystem

    s = session
    store_mod = pkg("core.output.output_store")
    profile = tmp_path / "profile"
    profile.mkdir()
    # e.g. the layer saved into the QGIS profile before the project was saved, reloaded with it
    earlier = store_mod.OutputStore(str(profile / "ai_segmentation.gpkg"), "ortho_objects",
                                    QgsCoordinateReferenceSystem("EPSG:32633"))
    QgsProject.instance().addMapLayer(earlier.layer())
    earlier.close()
    click(s, to_pixel(s.canvas, *raster_point(200.5, 200.5)))
    wait_result(s)
    s.dock.ui.save_button.click()
    layer = s.controller.output.layer
    assert layer.name() == "ortho_objects_2"
    path = tmp_path / "ai_segmentation.gpkg"
    assert s.iface.messageBar().get_messages(Qgis.Success)[-1].endswith(
        f"Saved object 1 to new layer 'ortho_objects_2' in {path}")
    combo = s.dock.ui.output_combo
    names = [combo.itemText(i) for i in range(combo.count())]
    assert len(names) == len(set(names)) and str(path) in combo.toolTip()
    click(s, to_pixel(s.canvas, *raster_point(400.5, 200.5)))
    wait_result(s)
    s.dock.ui.save_button.click()
    assert s.iface.messageBar().get_messages(Qgis.Success)[-1].endswith(
        f"Saved object 2 to layer 'ortho_objects_2' of {path}")


def test_dock_is_never_narrower_than_its_content(loaded_plugin, qgis_iface, qtbot):
    from qgis.PyQt.QtWidgets import QTextEdit

    window = qgis_iface.mainWindow()
    window.setCentralWidget(QTextEdit())  # the map's place: docks get only what is left of 1600 px
    window.resize(1600, 900)
    try:
        loaded_plugin.action.trigger()
        dock = loaded_plugin.dock
        dock.set_candidates([0.91, 0.52, 0.33])
        qtbot.waitUntil(lambda: dock.isVisible() and window.centralWidget().width() > 0)
        qtbot.wait(50)  # the window lays its docks out
        window.resizeDocks([dock], [250], Qt.Horizontal)  # squeezed, e.g. by another panel in the area
        qtbot.waitUntil(lambda: dock.width() < 800)
        scroll = dock.ui.root
        assert not scroll.horizontalScrollBar().isVisible()
        assert 250 < dock.width() < 800 and dock.width() >= scroll.widget().minimumSizeHint().width()
        right = scroll.viewport().width()
        for button in (*dock.ui.candidate_buttons, dock.ui.save_button, dock.ui.clear_button, dock.ui.export_button):
            assert button.mapTo(scroll.viewport(), button.rect().topRight()).x() <= right  # nothing cut off
            assert button.width() >= button.sizeHint().width()
    finally:
        window.takeCentralWidget().deleteLater()


def test_model_line_is_red_while_onnxruntime_is_missing(session, monkeypatch):
    s = session
    assert s.dock.ui.model_status.styleSheet() == pkg("ai_segmentation_dockwidget").OK_STYLE
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import of it now fails, as when not installed
    s.controller.refresh_models()
    assert s.dock.ui.model_status.styleSheet() == pkg("ai_segmentation_dockwidget").MISSING_STYLE
    assert "onnxruntime is not installed" in s.dock.ui.model_status.text()
    assert s.dock.ui.setup_button.text() == "Set up models…"
    monkeypatch.delitem(sys.modules, "onnxruntime")
    s.controller.refresh_models()
    assert s.dock.ui.model_status.styleSheet() == pkg("ai_segmentation_dockwidget").OK_STYLE


def test_a_raster_added_while_none_is_chosen_is_picked(session, tmp_path):
    s = session
    s.dock.set_layer(None)
    assert s.dock.raster_layer() is None
    first = QgsRasterLayer(write_bands(tmp_path / "new.tif", 3), "new")
    QgsProject.instance().addMapLayer(first)
    assert s.dock.raster_layer() is first
    second = QgsRasterLayer(write_bands(tmp_path / "other.tif", 3), "other")
    QgsProject.instance().addMapLayer(second)
    assert s.dock.raster_layer() is first  # a chosen raster is kept


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
    module = f"{pkg('toolbelt.metadata').__package__.split('.')[0]}.gui.setup.setup_dialog"

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


def test_panel_shows_where_the_models_run_and_a_fallback(session, qtbot):
    s = session
    label = s.dock.ui.runtime_status
    s.controller.segmenter()
    qtbot.waitUntil(lambda: label.isVisibleTo(s.dock) and "decoder" in label.text(), timeout=60000)
    assert label.text() == "Runs on CPU: decoder" and label.styleSheet() == ""  # Auto, no GPU provider here
    click(s, to_pixel(s.canvas, *raster_point(200.5, 150.5)))
    wait_result(s)
    qtbot.waitUntil(lambda: label.text() == "Runs on CPU: encoder and decoder", timeout=60000)

    s.controller.apply_settings(replace(s.controller.settings, provider="CUDAExecutionProvider"))
    s.controller.on_source_changed(None)
    qtbot.waitUntil(lambda: "CUDA is set in Options" in label.text(), timeout=60000)
    assert label.text().startswith("Runs on CPU: decoder. CUDA is set in Options, but the installed onnxruntime "
                                   "does not offer it")
    assert label.styleSheet() == pkg("ai_segmentation_dockwidget").WARNING_STYLE
