""""Find Similar Objects…" from the Raster menu: the dialog, the task (real encoder, cache, decoder),
objects appended to the output layer with their similarity fields, the heat map layer, cancel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import test_maptool
import test_plugin
from osgeo import ogr
from qgis.core import QgsApplication, QgsFeature, QgsPointXY, QgsProject, QgsRasterLayer, QgsSettings, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication
from similar_scene import GT, TARGETS, centre, scene, square_wkt, to_map, write_raster
from test_plugin import pkg

plugin_package = test_plugin.plugin_package
qgis_window = test_plugin.qgis_window
loaded_plugin = test_plugin.loaded_plugin
FIXTURES = Path(__file__).parent / "fixtures"
THRESHOLD = 0.9


@pytest.fixture
def env(plugin_package, qgis_iface, qgis_canvas, qgis_new_project, qtbot, tmp_path):
    """A raster of repeated objects, an output layer holding one saved object (selected), the colour
    encoder and tiny decoder as the plugin's models, a fresh cache, the canvas on the raster."""
    test_maptool.show_canvas(qgis_canvas, qtbot)
    pkg("toolbelt.log").set_message_bar(qgis_iface.messageBar())
    QgsProject.instance().setPresetHomePath(str(tmp_path))  # where a new output GeoPackage goes
    raster = QgsRasterLayer(write_raster(str(tmp_path / "panels.tif"), scene()), "panels")
    assert raster.isValid()
    core = pkg("core.output.output_store")
    store = core.OutputStore(str(tmp_path / "objects.gpkg"), "panels_objects", raster.crs())
    fid = store.append(core.to_qgs_geometry(ogr.CreateGeometryFromWkt(square_wkt(*TARGETS[0])).ExportToIsoWkb()),
                       core.ObjectAttributes(label="panel", score=0.9, source="panels"))
    output = QgsVectorLayer(f"{tmp_path / 'objects.gpkg'}|layername=panels_objects", "panels_objects", "ogr")
    QgsProject.instance().addMapLayers([raster, output])
    output.selectByIds([fid])
    models = tmp_path / "models"
    models.mkdir()
    for name in ("colour.encoder.onnx", "tiny.decoder.onnx"):
        shutil.copy(FIXTURES / name, models / name)
    qsettings = QgsSettings()
    keys = [k for k in qsettings.allKeys() if k.startswith("ai_segmentation/")]
    saved = {k: qsettings.value(k) for k in keys}
    pkg("toolbelt.settings").Settings(models_dir=str(models), encoder_path=str(models / "colour.encoder.onnx"),
                                      decoder_path=str(models / "tiny.decoder.onnx"),
                                      cache_dir=str(tmp_path / "cache")).save()
    qgis_canvas.setDestinationCrs(raster.crs())
    qgis_canvas.setExtent(raster.extent())
    qgis_canvas.refresh()
    yield raster, output, fid
    qtbot.waitUntil(lambda: QgsApplication.taskManager().countActiveTasks() == 0, timeout=60000)
    for k in qsettings.allKeys():
        if k.startswith("ai_segmentation/") and k not in saved:
            qsettings.remove(k)
    for k, v in saved.items():
        qsettings.setValue(k, v)
    pkg("toolbelt.log").set_message_bar(None)
    QgsProject.instance().setPresetHomePath("")


def _rows(layer: QgsVectorLayer):
    return [dict(zip(layer.fields().names(), f.attributes())) for f in layer.getFeatures()]


def test_dialog_asks_and_remembers(env, qgis_iface):
    raster, output, _ = env
    dialog = pkg("gui.similar").FindSimilarDialog(qgis_iface.mainWindow(), raster, output)
    assert dialog.selected_check.isEnabled() and dialog.selected_check.isChecked()
    assert dialog.selected_check.text() == "Selected objects only (1 selected)"
    dialog.threshold_spin.setValue(0.83)
    dialog.max_spin.setValue(7)
    choice = dialog.choice()
    assert (choice.raster_id, choice.examples_id) == (raster.id(), output.id())
    assert (choice.selected_only, choice.visible_only, choice.threshold, choice.max_objects) == (True, True, 0.83, 7)
    again = pkg("gui.similar").FindSimilarDialog(qgis_iface.mainWindow(), raster, output)
    assert again.threshold_spin.value() == 0.83 and again.max_spin.value() == 7
    output.removeSelection()
    again._examples_changed(output)
    assert not again.selected_check.isEnabled() and not again.choice().selected_only


def test_menu_action_finds_and_saves(env, loaded_plugin, qgis_iface, qtbot):
    _, output, fid = env
    qgis_iface.setActiveLayer(output)
    before = output.featureCount()

    def answer():
        dialog = QApplication.activeModalWidget()
        dialog.threshold_spin.setValue(THRESHOLD)
        dialog.accept()

    QTimer.singleShot(200, answer)
    loaded_plugin.similar_action.trigger()  # the dialog is modal: answer() closes it
    runner = loaded_plugin.similar
    assert runner is not None and runner.busy
    with qtbot.waitSignal(runner.done, timeout=120000) as blocker:
        pass
    message = blocker.args[0]
    assert "5 places at least 0.90 similar" in message and "added to 'panels_objects'" in message
    output.dataProvider().reloadData()
    rows = _rows(output)
    new = [r for r in rows if r["source_id"] == fid]
    assert len(rows) == before + len(new) and new
    for r in new:
        assert r["similarity"] >= THRESHOLD and r["label"] == "panel" and r["n_positive"] == 1
        assert r["model"] == "colour.encoder.onnx" and r["source"] == "panels" and r["area_m2"] > 0
    # The fields are in the GeoPackage itself, not only in QGIS.
    ds = ogr.Open(output.source().split("|")[0])
    names = [ds.GetLayer(0).GetLayerDefn().GetFieldDefn(i).GetName()
             for i in range(ds.GetLayer(0).GetLayerDefn().GetFieldCount())]
    assert names[-2:] == ["similarity", "source_id"]
    del ds
    heat = runner.heatmap
    assert heat.name() == "Similarity to panels_objects" and QgsProject.instance().mapLayer(heat.id()) is heat
    assert heat.renderer().type() == "singlebandpseudocolor" and heat.opacity() == pytest.approx(0.65)
    assert heat.rasterUnitsPerPixelX() == pytest.approx(16 * GT[1])
    for target in TARGETS[1:]:
        value, ok = heat.dataProvider().sample(QgsPointXY(*to_map(*centre(target))), 1)
        assert ok and value > 0.95
    value, ok = heat.dataProvider().sample(QgsPointXY(*to_map(650, 40)), 1)  # bare ground
    assert ok and value < 0.6


def test_examples_from_another_layer_go_to_a_new_output_layer(env, qtbot, tmp_path, qgis_iface):
    raster, _, _ = env
    plain = QgsVectorLayer("Polygon?crs=EPSG:32633", "drawn", "memory")
    f = QgsFeature()
    f.setGeometry(pkg("core.output.output_store").to_qgs_geometry(
        ogr.CreateGeometryFromWkt(square_wkt(*TARGETS[0])).ExportToIsoWkb()))
    plain.dataProvider().addFeatures([f])
    QgsProject.instance().addMapLayer(plain)
    similar = pkg("gui.similar")
    runner = similar.SimilarRunner(qgis_iface)
    with qtbot.waitSignal(runner.done, timeout=120000):
        runner.start(similar.SimilarChoice(raster.id(), plain.id(), False, True, THRESHOLD, 3, False))
    out = runner.output
    assert out.name() == "panels_similar" and out.source().startswith(str(tmp_path / "ai_segmentation.gpkg"))
    rows = _rows(out)
    assert 1 <= len(rows) <= 3 and all(r["similarity"] >= THRESHOLD and r["source_id"] == 1 for r in rows)
    assert runner.heatmap is None


def test_cancel_and_refusals(env, qtbot, qgis_iface):
    raster, output, _ = env
    similar = pkg("gui.similar")
    errors = pkg("core.errors")
    runner = similar.SimilarRunner(qgis_iface)
    before = output.featureCount()
    layers = len(QgsProject.instance().mapLayers())
    with qtbot.waitSignal(runner.done, timeout=120000) as blocker:
        task = runner.start(similar.SimilarChoice(raster.id(), output.id(), True, True, THRESHOLD, 10, True))
        task.cancel()
    assert blocker.args[0] == "Find similar cancelled: nothing was added."
    output.dataProvider().reloadData()
    assert output.featureCount() == before and len(QgsProject.instance().mapLayers()) == layers
    output.startEditing()
    with pytest.raises(errors.SegmentationError, match="is being edited"):
        runner.start(similar.SimilarChoice(raster.id(), output.id()))
    output.rollBack()
    with pytest.raises(errors.SegmentationError, match="choose the raster"):
        runner.start(similar.SimilarChoice("", output.id()))
