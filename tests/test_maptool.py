"""Clicks on a real canvas -> prompts in the raster CRS -> decoder -> preview -> saved GeoPackage feature.

Uses the tiny random-weight SAM (same ONNX signature as ViT-B): its masks are blobs unrelated to
the image, so results are checked against the decoder called directly on the same crop and
inputs, and geometry against the raster's georeferencing.
"""

from __future__ import annotations

import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import test_plugin
from osgeo import gdal, osr
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt
from test_plugin import pkg

plugin_package = test_plugin.plugin_package  # fixture

RASTER_CRS = "EPSG:32633"
ORIGIN = (500000.0, 4650000.0)  # top-left, metres
PIXEL = 0.5  # metres
SIZE = (600, 400)  # width, height: one encoder crop


def write_raster(path, size=SIZE, epsg=32633, origin=ORIGIN, pixel=PIXEL) -> str:
    """RGB GeoTIFF with a few bright shapes on a dark background."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.zeros((3, h, w), np.uint8)
    rgb[:] = 40
    rgb[0][(xx - 200) ** 2 + (yy - 200) ** 2 < 60**2] = 230  # red disc
    rgb[1][(xx > 350) & (xx < 500) & (yy > 100) & (yy < 300)] = 210  # green rectangle
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(rgb[i])
    ds.FlushCache()
    ds = None  # close now: a dataset alive at QGIS exit segfaults
    return str(path)


def raster_point(col: float, row: float):
    """Map coordinates (raster CRS) of a continuous pixel position."""
    return ORIGIN[0] + col * PIXEL, ORIGIN[1] - row * PIXEL


@pytest.fixture
def models_dir(tmp_path, tiny_paths):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(tiny_paths["encoder_preproc"], folder / "tiny.encoder.preproc.onnx")
    shutil.copy(tiny_paths["decoder"], folder / "tiny.decoder.onnx")
    return folder


def show_canvas(canvas, qtbot):
    """The session canvas starts hidden at 98x28: show it so pixels map to real coordinates."""
    canvas.parentWidget().show()
    canvas.parentWidget().resize(600, 400)
    qtbot.waitUntil(lambda: canvas.mapSettings().outputSize().width() > 200)


@pytest.fixture
def session(plugin_package, qgis_iface, qgis_canvas, qgis_new_project, qtbot, tmp_path, models_dir):
    """Dock + controller on a UTM raster, canvas in the raster CRS, tiny models, fresh cache."""
    show_canvas(qgis_canvas, qtbot)
    pkg("toolbelt.log").set_message_bar(qgis_iface.messageBar())
    QgsProject.instance().setPresetHomePath(str(tmp_path))  # the output GeoPackage goes here
    layer = QgsRasterLayer(write_raster(tmp_path / "ortho.tif"), "ortho")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    settings = pkg("toolbelt.settings").Settings(models_dir=str(models_dir), cache_dir=str(tmp_path / "cache"))
    dock = pkg("ai_segmentation_dockwidget").AISegmentationDock()
    controller = pkg("gui.controller").SegmentationController(qgis_iface, dock, settings)
    dock.set_layer(layer)
    qgis_canvas.setDestinationCrs(layer.crs())
    qgis_canvas.setExtent(layer.extent())
    qgis_canvas.refresh()
    dock.ui.start_button.click()
    assert qgis_canvas.mapTool() is controller.tool
    yield SimpleNamespace(canvas=qgis_canvas, dock=dock, controller=controller, layer=layer, iface=qgis_iface,
                          qtbot=qtbot, tmp_path=tmp_path)
    controller.shutdown()
    qtbot.waitUntil(lambda: QgsApplication.taskManager().countActiveTasks() == 0, timeout=60000)
    dock.deleteLater()
    pkg("toolbelt.log").set_message_bar(None)
    QgsProject.instance().setPresetHomePath("")


def to_pixel(canvas, x: float, y: float, crs: str = RASTER_CRS) -> QPoint:
    """Canvas widget position of a point given in ``crs``."""
    point = QgsPointXY(x, y)
    src = QgsCoordinateReferenceSystem(crs)
    dest = canvas.mapSettings().destinationCrs()
    if src != dest:
        point = QgsCoordinateTransform(src, dest, QgsProject.instance()).transform(point)
    p = canvas.getCoordinateTransform().transform(point)
    return QPoint(round(p.x()), round(p.y()))


def click(s, pos: QPoint, button=Qt.LeftButton) -> None:
    s.qtbot.mousePress(s.canvas.viewport(), button, pos=pos)
    s.qtbot.mouseRelease(s.canvas.viewport(), button, pos=pos)


def wait_result(s):
    s.qtbot.waitUntil(lambda: s.controller.session.history.result is not None, timeout=60000)
    return s.controller.session.history.result


def decode_directly(s, points=None, labels=None, box=None, mask_input=None, multimask=True):
    """The decoder called on the same embedding, prompts given in raster CRS (reference result)."""
    from core.raster.geo import map_to_pixel
    from core.sam_decoder import SamDecoder

    segmenter = s.controller.segmenter()
    crop = s.controller.session.history.result.seg.crop
    gt = segmenter.source.geotransform

    def frame(p):  # continuous positions in the crop's frame (the decoder shifts them itself)
        return crop.to_frame(map_to_pixel(gt, p))

    pts = frame(points) if points else None
    fbox = frame([box[:2], box[2:]]).ravel() if box else None
    if fbox is not None:  # map y grows up, rows grow down: SAM wants (x0, y0, x1, y1) top-left first
        fbox = np.array([min(fbox[0], fbox[2]), min(fbox[1], fbox[3]), max(fbox[0], fbox[2]), max(fbox[1], fbox[3])])
    return SamDecoder(s.controller.models.decoder).predict(segmenter.embedding(crop), pts, labels, fbox,
                                                           mask_input, multimask, continuous=True)


def features(layer):
    return list(layer.getFeatures())


def no_refine(s):
    """Refinement off: the saved polygon is then the pixel-exact outline of the mask."""
    u = s.dock.ui
    for spin in (u.simplify_spin, u.min_area_spin, u.fill_holes_spin):
        spin.setValue(0)
    u.largest_only_check.setChecked(False)


def test_click_encodes_previews_and_saves_a_feature(session):
    s = session
    x, y = raster_point(200.5, 200.5)
    with s.qtbot.waitSignal(s.controller.encoder.progress, timeout=10000):  # the crop is encoded in a QgsTask
        click(s, to_pixel(s.canvas, x, y))
        assert s.controller.session.markers.marker_count == 1  # drawn at once: the click returned first
        assert s.controller.session.history.result is None
    result = wait_result(s)
    s.qtbot.waitUntil(lambda: s.dock.ui.progress.isHidden())

    (px, py), = s.controller.session.history.current.points
    assert abs(px - x) <= PIXEL and abs(py - y) <= PIXEL  # canvas pixel = raster pixel here
    reference = decode_directly(s, [(px, py)], [1])
    assert result.seg.masks.shape == (3, SIZE[1], SIZE[0])
    np.testing.assert_array_equal(result.seg.masks, reference.masks)
    np.testing.assert_allclose(result.seg.scores, reference.scores, rtol=1e-6)
    buttons = s.dock.ui.candidate_buttons
    assert not s.dock.ui.candidate_row.isHidden()
    assert [b.text() for b in buttons] == [f"{i + 1} · {v:.2f}" for i, v in enumerate(reference.scores)]
    assert s.controller.session.overlay.has_mask and s.controller.session.overlay.isVisible()
    assert s.controller.session.markers.marker_count == 1

    s.qtbot.keyClick(s.canvas, Qt.Key_Tab)  # next candidate
    index = (int(np.argmax(reference.scores)) + 1) % 3
    assert result.index == index and buttons[index].isChecked()

    no_refine(s)
    s.dock.ui.label_edit.setText("disc")
    s.qtbot.keyClick(s.canvas, Qt.Key_S)  # save
    layer = s.controller.output.layer
    assert layer is not None and QgsProject.instance().mapLayer(layer.id()) is layer
    assert layer.source().startswith(str(s.tmp_path / "ai_segmentation.gpkg"))
    (feature,) = features(layer)
    assert feature["label"] == "disc" and feature["source"] == "ortho"
    assert feature["model"] == "tiny.encoder.preproc.onnx"
    assert (feature["n_positive"], feature["n_negative"]) == (1, 0)
    assert feature["score"] == pytest.approx(float(reference.scores[index]), rel=1e-6)
    geometry = feature.geometry()
    assert layer.crs().authid() == RASTER_CRS
    assert s.layer.extent().contains(geometry.boundingBox())
    assert geometry.area() == pytest.approx(reference.masks[index].sum() * PIXEL**2)
    assert feature["area_m2"] == pytest.approx(geometry.area())
    # Ready for the next object: prompts, markers and preview are cleared.
    assert s.controller.session.history.current.is_empty
    assert s.controller.session.markers.marker_count == 0 and not s.controller.session.overlay.has_mask
    assert s.dock.output_choice().layer_id == layer.id()


def test_right_click_adds_an_exclude_point_sent_to_the_decoder(session):
    s = session
    click(s, to_pixel(s.canvas, *raster_point(200.5, 200.5)))
    first = wait_result(s)
    click(s, to_pixel(s.canvas, *raster_point(420.5, 200.5)), Qt.RightButton)
    second = wait_result(s)
    prompts = s.controller.session.history.current
    assert prompts.labels == (1, 0) and s.controller.session.markers.marker_count == 2
    assert second.seg.masks.shape[0] == 1  # refining: one mask, fed with the chosen previous logits
    previous_logits = first.seg.low_res_logits[first.index][None]
    reference = decode_directly(s, list(prompts.points), [1, 0], mask_input=previous_logits, multimask=False)
    np.testing.assert_allclose(second.seg.low_res_logits, reference.low_res_logits, atol=1e-5)
    as_include = decode_directly(s, list(prompts.points), [1, 1], mask_input=previous_logits, multimask=False)
    assert np.abs(as_include.low_res_logits - second.seg.low_res_logits).max() > 1e-3
    assert s.dock.ui.candidate_row.isHidden()
    assert s.dock.ui.prompt_label.text() == "Prompts: 1 include, 1 exclude"


def test_undo_removes_the_last_prompt(session):
    s = session
    click(s, to_pixel(s.canvas, *raster_point(200.5, 200.5)))
    first = wait_result(s)
    click(s, to_pixel(s.canvas, *raster_point(100.5, 300.5)))
    wait_result(s)
    assert len(s.controller.session.history.current.points) == 2
    s.qtbot.keyClick(s.canvas, Qt.Key_Z, Qt.ControlModifier)
    assert s.controller.session.history.current.labels == (1,)
    assert s.controller.session.history.result is first  # shown again, not recomputed
    assert s.controller.session.markers.marker_count == 1
    s.dock.ui.undo_button.click()
    assert s.controller.session.history.current.is_empty
    assert not s.controller.session.overlay.has_mask and not s.dock.ui.save_button.isEnabled()


def drag(s, start: QPoint, end: QPoint) -> None:
    """A left drag as the canvas delivers it: press, moves with the button held, release."""
    tool, canvas = s.controller.tool, s.canvas
    tool.canvasPressEvent(QgsMapMouseEvent(canvas, QEvent.MouseButtonPress, start, Qt.LeftButton, Qt.LeftButton))
    for t in (0.3, 0.7, 1.0):
        pos = QPoint(round(start.x() + t * (end.x() - start.x())), round(start.y() + t * (end.y() - start.y())))
        tool.canvasMoveEvent(QgsMapMouseEvent(canvas, QEvent.MouseMove, pos, Qt.NoButton, Qt.LeftButton))
    tool.canvasReleaseEvent(QgsMapMouseEvent(canvas, QEvent.MouseButtonRelease, end, Qt.LeftButton, Qt.NoButton))


def test_box_drag_sends_a_box_and_combines_with_points(session):
    s = session
    x0, y0 = raster_point(140, 130)
    x1, y1 = raster_point(270, 270)
    drag(s, to_pixel(s.canvas, x0, y0), to_pixel(s.canvas, x1, y1))
    result = wait_result(s)
    prompts = s.controller.session.history.current
    assert prompts.points == () and prompts.box is not None
    bx0, by0, bx1, by1 = prompts.box
    assert (bx0, by0, bx1, by1) == pytest.approx((x0, y1, x1, y0), abs=PIXEL)
    reference = decode_directly(s, box=prompts.box, multimask=False)
    np.testing.assert_array_equal(result.seg.masks, reference.masks)
    assert s.controller.session.markers._box is not None  # the box outline is drawn

    click(s, to_pixel(s.canvas, *raster_point(200.5, 200.5)), Qt.RightButton)
    combined = wait_result(s)
    current = s.controller.session.history.current
    assert current.box == prompts.box and current.labels == (0,)
    reference = decode_directly(s, list(s.controller.session.history.current.points), [0], box=prompts.box,
                                mask_input=result.seg.low_res_logits[0][None], multimask=False)
    np.testing.assert_array_equal(combined.seg.masks, reference.masks)


def test_canvas_crs_differs_from_raster_crs(session):
    s = session
    mercator = QgsCoordinateReferenceSystem("EPSG:3857")
    s.canvas.setDestinationCrs(mercator)
    to_canvas = QgsCoordinateTransform(s.layer.crs(), mercator, QgsProject.instance())
    s.canvas.setExtent(to_canvas.transformBoundingBox(s.layer.extent()))
    s.canvas.refresh()
    s.canvas.waitWhileRendering()
    x, y = raster_point(200.5, 200.5)
    click(s, to_pixel(s.canvas, x, y))
    result = wait_result(s)
    (px, py), = s.controller.session.history.current.points
    assert abs(px - x) < 2 * PIXEL and abs(py - y) < 2 * PIXEL  # reprojected back to UTM
    assert s.controller.session.markers.marker_count == 1

    # The preview is drawn where the mask is: compare the canvas with and without it.
    mask = result.mask
    # The tiny model's masks are a fine speckle: test pixels whose 8 neighbours agree. A canvas
    # pixel is about one raster pixel here, so a drawing error of one pixel would show.
    inside = np.argwhere(erode(mask))
    outside = np.argwhere(erode(~mask) & in_raster(mask.shape))
    assert len(inside) > 1000 and len(outside) > 1000
    s.canvas.waitWhileRendering()
    with_overlay = s.canvas.viewport().grab().toImage()
    s.controller.session.overlay.hide()
    without = s.canvas.viewport().grab().toImage()
    s.controller.session.overlay.show()
    def changed(pixels):
        points = [to_pixel(s.canvas, *raster_point(col + 0.5, row + 0.5)) for row, col in pixels]
        return np.mean([with_overlay.pixel(p) != without.pixel(p) for p in points])

    assert changed(inside) == 1.0
    assert changed(outside) == 0.0

    no_refine(s)
    s.dock.ui.save_button.click()
    (feature,) = features(s.controller.output.layer)
    assert s.controller.output.layer.crs().authid() == RASTER_CRS
    assert feature.geometry().area() == pytest.approx(mask.sum() * PIXEL**2)


def erode(mask):
    """Pixels whose 3x3 neighbourhood is all in ``mask``."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[1:-1, 1:-1] = np.logical_and.reduce(
        [mask[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    )
    return out


def in_raster(shape):
    m = np.zeros(shape, bool)
    m[: SIZE[1], : SIZE[0]] = True
    return m


def test_click_outside_the_raster_gives_a_message(session):
    from qgis.core import Qgis

    s = session
    click(s, to_pixel(s.canvas, *raster_point(-20, 100)))  # west of the raster, still on the canvas
    s.canvas.setExtent(QgsRectangle(ORIGIN[0] - 400, ORIGIN[1] - 300, ORIGIN[0] + 400, ORIGIN[1] + 100))
    click(s, to_pixel(s.canvas, *raster_point(-300, 100)))
    warnings = s.iface.messageBar().get_messages(Qgis.Warning)
    assert len(warnings) == 2 and all("outside the raster" in w for w in warnings)
    # map coordinates in plain decimals (not "4.64995e+06")
    assert re.search(r"the point \(4999\d\d(\.\d+)?, 46499\d\d(\.\d+)?\) is outside", warnings[0])
    assert "e+0" not in warnings[1]
    assert s.controller.session.history.current.is_empty and s.controller.session.markers.marker_count == 0


def test_missing_model_gives_a_message(session, tmp_path):
    from dataclasses import replace

    from qgis.core import Qgis

    s = session
    empty = tmp_path / "no_models"
    empty.mkdir()
    s.controller.apply_settings(replace(s.controller.settings, models_dir=str(empty)))
    assert "no SAM encoder or decoder" in s.dock.ui.model_status.text()
    assert s.dock.ui.setup_button.text() == "Set up models…"
    click(s, to_pixel(s.canvas, *raster_point(200, 200)))
    s.dock.ui.start_button.click()  # stop
    s.dock.ui.start_button.click()  # start again: refused with a message
    warnings = s.iface.messageBar().get_messages(Qgis.Warning)
    assert len(warnings) == 2 and all("SAM models are missing" in w for w in warnings)
    assert not s.dock.ui.start_button.isChecked()
    assert s.controller.session.history.current.is_empty


def test_hover_preview_is_off_by_default_and_previews_without_a_prompt(session):
    from dataclasses import replace

    s = session
    assert s.controller.tool.hover_enabled is False
    click(s, to_pixel(s.canvas, *raster_point(200.5, 200.5)))
    clicked = wait_result(s)
    s.controller.apply_settings(replace(s.controller.settings, hover_preview=True))
    shown = []
    s.controller.session.overlay.set_mask = lambda mask, *a: shown.append(mask.copy())
    pos = to_pixel(s.canvas, *raster_point(420.5, 200.5))
    s.controller.tool.canvasMoveEvent(QgsMapMouseEvent(s.canvas, QEvent.MouseMove, pos, Qt.NoButton, Qt.NoButton))
    s.qtbot.waitUntil(lambda: len(shown) == 1)
    assert s.controller.session.history.current.labels == (1,)  # no prompt added
    assert s.controller.session.history.result is clicked
    assert not np.array_equal(shown[0], clicked.mask)


def encode_all(s, layer=None):
    """Every crop of the chosen raster in the cache (what "Encode Image" does), synchronously."""
    segmenter = s.controller.segmenter()
    for crop in segmenter.crops_in_extent() + segmenter.crops_in_extent(support=True):
        segmenter.encode(crop)
    return segmenter


def test_click_returns_at_once_and_the_latest_click_wins(session):
    s = session
    encode_all(s)
    flow = s.controller.session.flow
    click(s, to_pixel(s.canvas, *raster_point(200.5, 200.5)))
    # The click returned before any decode: the marker is there, the mask not yet.
    assert s.controller.session.markers.marker_count == 1 and s.controller.session.history.result is None
    assert flow.busy
    click(s, to_pixel(s.canvas, *raster_point(420.5, 150.5)), Qt.RightButton)  # before the first mask came
    result = wait_result(s)
    s.qtbot.waitUntil(lambda: not flow.busy)
    history = s.controller.session.history
    assert history.current.labels == (1, 0) and history._results[1] is None  # the first click's decode dropped
    reference = decode_directly(s, list(history.current.points), [1, 0], multimask=False)
    np.testing.assert_array_equal(result.seg.masks, reference.masks)
    assert s.controller.encoder.busy is False  # every crop was cached: nothing encoded


def test_esc_cancels_the_encode_a_click_started(session):
    s = session
    flow = s.controller.session.flow
    with s.qtbot.waitSignal(s.controller.encoder.progress, timeout=10000):
        click(s, to_pixel(s.canvas, *raster_point(200.5, 200.5)))
    assert flow.busy and s.controller.encoder.busy
    s.qtbot.keyClick(s.canvas, Qt.Key_Escape)
    assert not flow.busy and s.controller.encoder.busy is False  # the click's encode task was cancelled
    assert s.controller.session.markers.marker_count == 0 and not s.controller.session.overlay.has_mask
    s.qtbot.wait(300)
    assert s.controller.session.history.result is None and s.dock.ui.status_label.isHidden()


def open_raster(s, path, name):
    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    s.dock.set_layer(layer)
    s.canvas.setExtent(layer.extent())
    s.canvas.refresh()
    return layer


def map_has_keyboard(s) -> bool:
    """The canvas is its window's focus widget (hasFocus() also needs the window to be the active one)."""
    return s.canvas.window().focusWidget() is s.canvas


def test_shortcuts_work_from_the_panel_without_taking_keys_from_text_fields(session):
    s = session
    u = s.dock.ui
    click(s, to_pixel(s.canvas, *raster_point(200.5, 200.5)))
    result = wait_result(s)
    first = result.index
    s.qtbot.keyClick(u.candidate_buttons[0], Qt.Key_Tab)  # focus on a panel button: Tab is "next mask"
    assert result.index == (first + 1) % 3
    s.qtbot.keyClicks(u.label_edit, "roof s")  # typing in the Label field: S is a letter there
    assert u.label_edit.text() == "roof s" and s.controller.output.layer is None
    s.qtbot.keyClick(u.label_edit, Qt.Key_Z, Qt.ControlModifier)  # the field's own undo
    assert s.controller.session.history.current.labels == (1,)
    s.qtbot.keyClick(u.label_edit, Qt.Key_Escape)  # leaves the field for the map; prompts stay
    assert map_has_keyboard(s) and s.controller.session.history.result is result
    s.dock.ui.label_edit.setFocus()
    s.qtbot.keyClick(u.label_edit, Qt.Key_Return)  # Enter in Label saves and gives the map the keyboard
    (feature,) = features(s.controller.output.layer)
    assert feature["label"] == u.label_edit.text().strip() and map_has_keyboard(s)
    click(s, to_pixel(s.canvas, *raster_point(420.5, 200.5)))
    wait_result(s)
    s.qtbot.keyClick(u.start_button, Qt.Key_S)  # S with a panel button focused saves
    assert len(features(s.controller.output.layer)) == 2
    click(s, to_pixel(s.canvas, *raster_point(100.5, 100.5)))
    wait_result(s)
    s.qtbot.keyClick(u.scope_combo, Qt.Key_Escape)
    assert s.controller.session.history.current.is_empty


def test_switching_tools_removes_prompts_and_previews(session):
    from dataclasses import replace

    from qgis.gui import QgsMapToolPan

    s = session
    click(s, to_pixel(s.canvas, *raster_point(200.5, 200.5)))
    wait_result(s)
    s.controller.apply_settings(replace(s.controller.settings, hover_preview=True))
    s.qtbot.keyClick(s.canvas, Qt.Key_Escape)
    assert not s.dock.ui.clear_button.isEnabled()
    pos = to_pixel(s.canvas, *raster_point(420.5, 200.5))
    s.controller.tool.canvasMoveEvent(QgsMapMouseEvent(s.canvas, QEvent.MouseMove, pos, Qt.NoButton, Qt.NoButton))
    s.qtbot.waitUntil(lambda: s.controller.session.overlay.has_mask)  # a hover preview, no prompt
    assert s.dock.ui.clear_button.isEnabled()  # Clear removes a hover preview too
    s.dock.ui.clear_button.click()
    assert not s.controller.session.overlay.has_mask
    s.controller.tool.canvasMoveEvent(QgsMapMouseEvent(s.canvas, QEvent.MouseMove, pos, Qt.NoButton, Qt.NoButton))
    s.qtbot.waitUntil(lambda: s.controller.session.overlay.has_mask)
    click(s, pos, Qt.LeftButton)
    wait_result(s)
    pan = QgsMapToolPan(s.canvas)
    s.canvas.setMapTool(pan)  # the user picks another tool
    assert s.controller.session.markers.marker_count == 0 and not s.controller.session.overlay.has_mask
    assert s.controller.session.history.current.is_empty and not s.dock.ui.start_button.isChecked()
    s.canvas.unsetMapTool(pan)


def test_raster_without_georeferencing_is_measured_in_pixels(session, capfd):
    s = session
    from test_segmenter import raster

    png = raster(s.tmp_path / "plain.png", 300, 200, gt=None, driver="PNG")
    layer = open_raster(s, png, "plain")
    s.canvas.waitWhileRendering()
    s.qtbot.waitUntil(lambda: s.controller._prepared is s.controller._segmenter, timeout=20000)
    capfd.readouterr()  # QGIS's own GDAL provider complains on loading and drawing a raster without georeferencing
    click(s, to_pixel(s.canvas, 150.5, -100.5, crs=s.canvas.mapSettings().destinationCrs().authid()))
    result = wait_result(s)
    no_refine(s)
    s.dock.ui.save_button.click()
    out = s.controller.output.layer
    (feature,) = features(out)
    names = out.fields().names()
    assert "area_m2" not in names and "perimeter_m" not in names  # pixels are not metres
    assert feature["area_px"] == pytest.approx(float(result.mask.sum()))
    assert feature["perimeter_px"] > 0 and feature["source"] == layer.name()
    with s.qtbot.waitSignal(s.controller.encoder.extent_done, timeout=60000):
        s.dock.ui.encode_button.click()
    assert s.controller.output.export(str(s.tmp_path / "plain_objects.gpkg"), "objects", False) == 1
    err = capfd.readouterr().err
    assert "ERROR" not in err and "proj_create" not in err, err
