"""Click -> preview latency of the plugin, against the raw decoder ``session.run`` on the same inputs.

A real QgsMapCanvas (offscreen), the plugin's dock, controller and map tool, a 1024 x 1024 RGB
GeoTIFF (one encoder crop, so no re-centring), its crop encoded beforehand (the tiny encoder: the
embedding's values do not change the decoder's cost). Each timed click is a mouse press and
release sent to the canvas, through decoding, the mask image and a synchronous repaint of the
canvas with the preview. The reference is ``InferenceSession.run`` of the same decoder file on the
same feed. Run from the repository root:

    QT_QPA_PLATFORM=offscreen flock /tmp/heavy.lock .venv/bin/python bench/bench_click.py

Models: the tiny test decoder, and ``.bench/models/vit_b.decoder.onnx`` when present.
``BENCH_PROFILE=1`` also prints a cProfile of the timed clicks.
"""

from __future__ import annotations

import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, VIT_B_DIR

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from osgeo import gdal, osr
from qgis.core import QgsApplication, QgsPointXY, QgsProject, QgsRasterLayer
from qgis.gui import QgsMapCanvas, QgsMessageBar
from qgis.PyQt.QtCore import QEvent, QPoint, QPointF, Qt
from qgis.PyQt.QtGui import QMouseEvent
from qgis.PyQt.QtWidgets import QMainWindow

CLICKS = 30
SIZE = 1024
TINY = ROOT / "tests" / "fixtures"


class Iface:
    """The three things the controller asks of QgisInterface."""

    def __init__(self, window: QMainWindow, canvas: QgsMapCanvas) -> None:
        self._window, self._canvas, self._bar = window, canvas, QgsMessageBar()

    def mapCanvas(self) -> QgsMapCanvas:  # noqa: N802 (QgisInterface API)
        return self._canvas

    def mainWindow(self) -> QMainWindow:  # noqa: N802
        return self._window

    def messageBar(self) -> QgsMessageBar:  # noqa: N802
        return self._bar


def write_raster(path: str) -> str:
    rng = np.random.default_rng(0)
    ds = gdal.GetDriverByName("GTiff").Create(path, SIZE, SIZE, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((500000.0, 0.5, 0.0, 4650000.0, 0.0, -0.5))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(rng.integers(0, 255, (SIZE, SIZE), dtype=np.uint8))
    ds = None
    return path


def package(tmp: str) -> str:
    """The repository importable as the plugin package ``ai_segmentation``."""
    os.symlink(ROOT, os.path.join(tmp, "ai_segmentation"))
    sys.path.insert(0, tmp)
    return "ai_segmentation"


def send_click(canvas: QgsMapCanvas, pos: QPoint) -> None:
    for kind in (QEvent.MouseButtonPress, QEvent.MouseButtonRelease):
        event = QMouseEvent(kind, QPointF(pos), Qt.LeftButton, Qt.LeftButton, Qt.NoModifier)
        QgsApplication.sendEvent(canvas.viewport(), event)


def bench(app: QgsApplication, pkg: str, decoder: Path, tmp: str) -> None:
    models = Path(tmp) / decoder.stem
    models.mkdir()
    shutil.copy(TINY / "tiny.encoder.preproc.onnx", models / "tiny.encoder.preproc.onnx")
    shutil.copy(decoder, models / "x.decoder.onnx")
    settings_mod = importlib.import_module(f"{pkg}.toolbelt.settings")
    dock_mod = importlib.import_module(f"{pkg}.ai_segmentation_dockwidget")
    controller_mod = importlib.import_module(f"{pkg}.gui.controller")
    transforms = importlib.import_module(f"{pkg}.core.transforms")
    sam_decoder = importlib.import_module(f"{pkg}.core.sam_decoder")
    ort = importlib.import_module("onnxruntime")

    window = QMainWindow()
    canvas = QgsMapCanvas(window)
    window.setCentralWidget(canvas)
    window.resize(900, 900)
    window.show()
    layer = QgsRasterLayer(write_raster(os.path.join(tmp, f"{decoder.stem}.tif")), "bench")
    QgsProject.instance().addMapLayer(layer)
    canvas.setLayers([layer])
    canvas.setDestinationCrs(layer.crs())
    settings = settings_mod.Settings(models_dir=str(models), cache_dir=os.path.join(tmp, "cache"))
    dock = dock_mod.AISegmentationDock(window)
    controller = controller_mod.SegmentationController(Iface(window, canvas), dock, settings)
    dock.set_layer(layer)
    dock.ui.start_button.click()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    canvas.setExtent(layer.extent())
    canvas.refresh()
    canvas.waitWhileRendering()

    m2p = canvas.getCoordinateTransform()
    ext = layer.extent()
    rng = np.random.default_rng(1)
    spots = [(ext.xMinimum() + ext.width() * u, ext.yMinimum() + ext.height() * v)
             for u, v in rng.uniform(0.1, 0.9, (CLICKS + 1, 2))]
    pixels = [m2p.transform(QgsPointXY(x, y)) for x, y in spots]
    pos = [QPoint(round(p.x()), round(p.y())) for p in pixels]

    send_click(canvas, pos[0])  # encodes the crop in a QgsTask, then decodes
    deadline = time.time() + 300
    while controller.history.result is None and time.time() < deadline:
        app.processEvents()
        time.sleep(0.01)
    assert controller.history.result is not None, "the crop was not encoded"
    segmenter = controller.segmenter()
    crop = controller.history.result.seg.crop

    emb = segmenter.embedding(crop)
    gt = segmenter.source.geotransform
    session = ort.InferenceSession(str(decoder), providers=["CPUExecutionProvider"])

    def raw_feed(x: float, y: float) -> dict:
        col, row = (x - gt[0]) / gt[1] - 0.5, (y - gt[3]) / gt[5] - 0.5
        coords, labels = sam_decoder.build_prompt([[col, row]], [1], None)
        coords = transforms.apply_coords(coords, emb.original_size)
        return {
            "image_embeddings": emb.embeddings,
            "point_coords": coords[None].astype(np.float32),
            "point_labels": labels[None].astype(np.float32),
            "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.array([256, 256], np.float32),  # what SamDecoder sends (masks come from low_res)
        }

    session.run(None, raw_feed(*spots[0]))  # warm, as the plugin's session is
    # Interleaved, click then raw run on the same prompt, so that load from other processes hits both.
    click_s, raw_s = [], []
    for p in pos[1:]:
        controller.clear()
        canvas.viewport().repaint()
        t = time.perf_counter()
        send_click(canvas, p)
        canvas.viewport().repaint()  # paint the preview now, as the next event loop turn would
        click_s.append(time.perf_counter() - t)
        prompts = controller.history.current
        assert controller.history.result is not None and len(prompts.points) == 1
        feed = raw_feed(*prompts.points[0])
        t = time.perf_counter()
        session.run(None, feed)
        raw_s.append(time.perf_counter() - t)

    click_ms, raw_ms = statistics.median(click_s) * 1e3, statistics.median(raw_s) * 1e3
    worst = max(click_s) * 1e3
    print(f"| {decoder.name} | {click_ms:.1f} ms | {worst:.1f} ms | {raw_ms:.1f} ms | {click_ms / raw_ms:.2f}x |")
    controller.shutdown()
    QgsApplication.taskManager().cancelAll()
    QgsProject.instance().removeAllMapLayers()
    dock.deleteLater()
    window.deleteLater()
    app.processEvents()


def main() -> None:
    app = QgsApplication([], True)
    app.initQgis()
    decoders = [TINY / "tiny.decoder.onnx"]
    if (VIT_B_DIR / "vit_b.decoder.onnx").is_file():
        decoders.append(VIT_B_DIR / "vit_b.decoder.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        pkg = package(tmp)
        print(f"click -> preview on a {SIZE}x{SIZE} crop, median of {CLICKS} clicks, {os.cpu_count()} cores")
        print("| decoder | click -> preview (median) | worst | raw session.run (median) | ratio |")
        print("|---|---|---|---|---|")
        for decoder in decoders:
            bench(app, pkg, decoder, tmp)
    app.exitQgis()


if __name__ == "__main__":
    main()
