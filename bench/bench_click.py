"""Click -> preview on the canvas, and how long the GUI thread stalls per click.

A real QgsMapCanvas (offscreen), the plugin's dock, controller and map tool on GeoTIFFs whose
crops are encoded beforehand (the tiny encoder: an embedding's values do not change the
decoder's cost). Each click is a mouse press and release sent to the canvas from inside the
event loop; it is timed until the mask overlay has painted the new mask. Meanwhile a precise
2 ms QTimer heartbeat runs in the same event loop: the longest gap between two beats during a
click is that click's longest GUI stall (a frozen map shows as a long gap). The GUI thread's own
CPU time per click (``time.thread_time``) is printed too: unlike wall times it does not grow when
other processes share the cores.

Cases:
- new object: a click on a cached 1024 x 1024 crop, prompts cleared before each click;
- refined: the first click on a new object of a 3000 x 2000 raster whose grid and support crops
  are all cached ("Encode Image" done), near crop edges, so the first mask is refined on
  prepared crops: time to the first preview and to the final one.

The reference is ``InferenceSession.run`` of the same decoder file on the same feed, measured
in the same run. Run from the repository root:

    QT_QPA_PLATFORM=offscreen flock /tmp/heavy.lock .venv/bin/python bench/bench_click.py

Models: the tiny test decoder, and ``.bench/models/vit_b.decoder.onnx`` when present (build it
with tools/make_vit_b.py, see README).
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
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
from _common import ROOT, VIT_B_DIR

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from osgeo import gdal, osr
from qgis.core import QgsApplication, QgsPointXY, QgsProject, QgsRasterLayer
from qgis.gui import QgsMapCanvas, QgsMessageBar
from qgis.PyQt.QtCore import QEvent, QEventLoop, QPoint, QPointF, Qt, QTimer
from qgis.PyQt.QtGui import QMouseEvent
from qgis.PyQt.QtWidgets import QMainWindow

CLICKS = 40
REFINE_CLICKS = 12
HEARTBEAT_MS = 2
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


def write_raster(path: str, width: int, height: int) -> str:
    rng = np.random.default_rng(0)
    ds = gdal.GetDriverByName("GTiff").Create(path, width, height, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((500000.0, 0.5, 0.0, 4650000.0, 0.0, -0.5))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(rng.integers(0, 255, (height, width), dtype=np.uint8))
    ds = None
    return path


def package(tmp: str) -> str:
    """The repository importable as the plugin package ``ai_segmentation``."""
    os.symlink(ROOT, os.path.join(tmp, "ai_segmentation"))
    sys.path.insert(0, tmp)
    return "ai_segmentation"


def send_click(canvas: QgsMapCanvas, pos: QPoint) -> None:
    for kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease):
        event = QMouseEvent(kind, QPointF(pos), Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
        QgsApplication.sendEvent(canvas.viewport(), event)


class Heartbeat:
    """A precise timer in the GUI event loop; the gaps between its beats are the stalls."""

    def __init__(self) -> None:
        self.beats: List[float] = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(lambda: self.beats.append(time.perf_counter()))
        self.timer.start()

    def longest_gap(self, start: float, end: float) -> float:
        """Longest time between beats (or the window's ends) within ``[start, end]``, seconds."""
        inside = [start] + [b for b in self.beats if start < b < end] + [end]
        return max(b - a for a, b in zip(inside, inside[1:]))


class PaintProbe:
    """Notes when the mask overlay has painted a given image (wraps MaskOverlay.paint)."""

    def __init__(self, overlay_cls: Any) -> None:
        self.waiting: Optional[Callable[[Any], bool]] = None
        self.painted_at: Optional[float] = None
        self.cpu_at = 0.0
        self.loop: Optional[QEventLoop] = None
        probe, original = self, overlay_cls.paint

        def paint(overlay: Any, painter: Any, *args: Any) -> None:
            original(overlay, painter, *args)
            if probe.waiting is not None and probe.waiting(overlay):
                probe.painted_at, probe.cpu_at = time.perf_counter(), time.thread_time()
                probe.waiting = None
                if probe.loop is not None:
                    probe.loop.quit()

        overlay_cls.paint = paint

    def run_until_painted(self, action: Callable[[], None], ready: Callable[[Any], bool],
                          timeout_s: float = 120.0) -> Tuple[float, float, float]:
        """Run ``action`` from inside the event loop; ``(start, painted)`` perf_counter times and the
        GUI thread's CPU seconds in between."""
        self.waiting, self.painted_at = ready, None
        self.loop = QEventLoop()
        start: List[float] = []

        def go() -> None:
            start.append(time.perf_counter())
            start.append(time.thread_time())
            action()

        QTimer.singleShot(0, go)
        QTimer.singleShot(int(timeout_s * 1000), self.loop.quit)
        self.loop.exec()
        self.loop = None
        if self.painted_at is None:
            raise RuntimeError("the preview was never painted")
        return start[0], self.painted_at, self.cpu_at - start[1]


def pct(values: List[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


class Bench:
    def __init__(self, app: QgsApplication, pkg: str, decoder: Path, tmp: str) -> None:
        self.app, self.pkg, self.decoder, self.tmp = app, pkg, decoder, tmp
        models = Path(tmp) / decoder.stem
        models.mkdir()
        shutil.copy(TINY / "tiny.encoder.preproc.onnx", models / "tiny.encoder.preproc.onnx")
        shutil.copy(decoder, models / "x.decoder.onnx")
        settings_mod = importlib.import_module(f"{pkg}.toolbelt.settings")
        dock_mod = importlib.import_module(f"{pkg}.ai_segmentation_dockwidget")
        controller_mod = importlib.import_module(f"{pkg}.gui.controller")
        self.window = QMainWindow()
        self.canvas = QgsMapCanvas(self.window)
        self.window.setCentralWidget(self.canvas)
        self.window.resize(900, 900)
        self.window.show()
        settings = settings_mod.Settings(models_dir=str(models), cache_dir=os.path.join(tmp, f"cache-{decoder.stem}"))
        self.dock = dock_mod.AISegmentationDock(self.window)
        self.controller = controller_mod.SegmentationController(Iface(self.window, self.canvas), self.dock, settings)
        self.probe = PaintProbe(importlib.import_module(f"{pkg}.gui.canvas_items").MaskOverlay)
        self.heart = Heartbeat()

    def open(self, name: str, width: int, height: int) -> QgsRasterLayer:
        layer = QgsRasterLayer(write_raster(os.path.join(self.tmp, f"{name}.tif"), width, height), name)
        QgsProject.instance().addMapLayer(layer)
        self.canvas.setLayers([layer])
        self.canvas.setDestinationCrs(layer.crs())
        self.dock.set_layer(layer)
        if not self.dock.ui.start_button.isChecked():
            self.dock.ui.start_button.click()
        self.canvas.setExtent(layer.extent())
        self.canvas.refresh()
        self.canvas.waitWhileRendering()
        segmenter = self.controller.segmenter()
        for crop in segmenter.crops_in_extent() + segmenter.crops_in_extent(support=True):
            segmenter.encode(crop)  # "Encode Image", synchronously
        deadline = time.time() + 60
        while self.controller._prepared is not segmenter and time.time() < deadline:  # decoder loaded
            self.app.processEvents()
            time.sleep(0.01)
        return layer

    def spots(self, layer: QgsRasterLayer, n: int, seed: int, lo: float = 0.1, hi: float = 0.9) -> List[QPoint]:
        m2p = self.canvas.getCoordinateTransform()
        ext = layer.extent()
        rng = np.random.default_rng(seed)
        out = []
        for u, v in rng.uniform(lo, hi, (n, 2)):
            p = m2p.transform(QgsPointXY(ext.xMinimum() + ext.width() * u, ext.yMinimum() + ext.height() * v))
            out.append(QPoint(round(p.x()), round(p.y())))
        return out

    def click(self, pos: QPoint, final: bool) -> Tuple[float, float, float, int, float]:
        """One click on a new object: ``(first preview s, final preview s, longest stall s, decodes,
        GUI thread CPU s)``."""
        session = self.controller.session
        session.clear()
        self.canvas.viewport().repaint()
        results: List[Tuple[Any, bool]] = []
        slot = lambda seg, index, image, is_final: results.append((image, is_final))  # noqa: E731
        session.flow.result.connect(slot)
        try:
            start, first, cpu = self.probe.run_until_painted(
                lambda: send_click(self.canvas, pos),
                lambda overlay: bool(results) and overlay._image is results[0][0])
            end = first
            if final and not results[-1][1]:
                _, end, more = self.probe.run_until_painted(
                    lambda: None, lambda overlay: bool(results) and results[-1][1] and overlay._image is results[-1][0])
                cpu += more
        finally:
            session.flow.result.disconnect(slot)
        return first - start, end - start, self.heart.longest_gap(start, end), len(results), cpu

    def raw_ms(self, layer_points: int = 20) -> float:
        """Median ``InferenceSession.run`` of the decoder on the feed the plugin sends, ms."""
        ort = importlib.import_module("onnxruntime")
        transforms = importlib.import_module(f"{self.pkg}.core.transforms")
        sam_decoder = importlib.import_module(f"{self.pkg}.core.sam_decoder")
        result = self.controller.session.history.result
        emb = self.controller.segmenter().embedding(result.seg.crop)
        session = ort.InferenceSession(str(self.decoder), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(2)
        times = []
        for i in range(layer_points + 1):
            coords, labels = sam_decoder.build_prompt([rng.uniform(50, 970, 2).tolist()], [1], None)
            feed = {
                "image_embeddings": emb.embeddings,
                "point_coords": transforms.apply_coords(coords, emb.original_size)[None].astype(np.float32),
                "point_labels": labels[None].astype(np.float32),
                "mask_input": np.zeros((1, 1, 256, 256), np.float32),
                "has_mask_input": np.zeros(1, np.float32),
                "orig_im_size": np.array([256, 256], np.float32),  # what SamDecoder sends
            }
            t = time.perf_counter()
            session.run(None, feed)
            if i:  # the first run warms the session, as the plugin's is warmed
                times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3

    def close(self) -> None:
        self.heart.timer.stop()
        self.controller.shutdown()
        QgsApplication.taskManager().cancelAll()
        QgsProject.instance().removeAllMapLayers()
        self.dock.deleteLater()
        self.window.deleteLater()
        self.app.processEvents()


def run(app: QgsApplication, pkg: str, decoder: Path, tmp: str) -> None:
    b = Bench(app, pkg, decoder, tmp)
    layer = b.open(f"one_{decoder.stem}", 1024, 1024)
    b.click(b.spots(layer, 1, 9)[0], final=True)  # warm: first paint, first decode
    clicks = [b.click(p, final=False) for p in b.spots(layer, CLICKS, 1)]
    raw = b.raw_ms()
    first = [c[0] * 1e3 for c in clicks]
    stall = [c[2] * 1e3 for c in clicks]
    cpu = [c[4] * 1e3 for c in clicks]
    print(f"| {decoder.name} | new object, 1024 crop | {statistics.median(first):.1f} / {pct(first, 95):.1f} ms "
          f"| {statistics.median(stall):.1f} / {pct(stall, 95):.1f} / {max(stall):.1f} ms "
          f"| {statistics.median(cpu):.1f} ms | raw {raw:.1f} ms | {statistics.median(first) / raw:.2f}x |")
    layer = b.open(f"big_{decoder.stem}", 3000, 2000)
    # near the grid's crop edges (every 768 px), where masks get cut and refined
    m2p = b.canvas.getCoordinateTransform()
    gt = (500000.0, 0.5, 4650000.0, -0.5)
    edge = []
    for col, row in ((760, 500), (1540, 700), (2000, 760), (1000, 1530), (770, 1200), (2300, 980),
                     (1530, 1530), (500, 770), (2600, 300), (1790, 1790), (300, 1000), (1200, 300))[:REFINE_CLICKS]:
        p = m2p.transform(QgsPointXY(gt[0] + (col + 0.5) * gt[1], gt[2] + (row + 0.5) * gt[3]))
        edge.append(QPoint(round(p.x()), round(p.y())))
    refined = [b.click(p, final=True) for p in edge]
    first = [c[0] * 1e3 for c in refined]
    final = [c[1] * 1e3 for c in refined]
    stall = [c[2] * 1e3 for c in refined]
    steps = [c[3] for c in refined]
    cpu = [c[4] * 1e3 for c in refined]
    print(f"| {decoder.name} | first click on a new object, 3000x2000 all cached, near crop edges "
          f"({statistics.mean(steps):.1f} decodes each) | first {statistics.median(first):.1f} / "
          f"{pct(first, 95):.1f} ms, final {statistics.median(final):.1f} / {pct(final, 95):.1f} ms "
          f"| {statistics.median(stall):.1f} / {pct(stall, 95):.1f} / {max(stall):.1f} ms "
          f"| {statistics.median(cpu):.1f} ms | | |")
    b.close()


def main() -> None:
    app = QgsApplication([], True)
    app.initQgis()
    decoders = [TINY / "tiny.decoder.onnx"]
    if (VIT_B_DIR / "vit_b.decoder.onnx").is_file():
        decoders.append(VIT_B_DIR / "vit_b.decoder.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        pkg = package(tmp)
        print(f"click -> preview painted on the canvas; {CLICKS} + {REFINE_CLICKS} clicks, "
              f"{os.cpu_count()} cores, heartbeat {HEARTBEAT_MS} ms")
        print("| decoder | case | click -> preview p50 / p95 | longest GUI stall per click p50 / p95 / max "
              "| GUI thread CPU per click (p50) | reference | ratio (p50) |")
        print("|---|---|---|---|---|---|---|")
        for decoder in decoders:
            run(app, pkg, decoder, tmp)
    app.exitQgis()


if __name__ == "__main__":
    main()
