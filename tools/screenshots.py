"""Screenshots of the plugin in the real QGIS desktop, under Xvfb, into docs/screenshots/.

    .venv/bin/python tools/screenshots.py [OUT_DIR]

Outside QGIS this script builds a throw-away QGIS profile (the plugin symlinked into it and
enabled, onnxruntime from .venv put where the setup dialog installs packages), a synthetic
aerial-like GeoTIFF, and starts ``xvfb-run qgis --code tools/screenshots.py``. Inside QGIS
(``AI_SEG_SHOTS`` set) it plays the README's usage: open the panel from the toolbar, pick the
raster, Encode Image, Start Segmentation, clicks, Save Current Mask, and grabs the widgets.

Models: the SAM files in models/ when there are some, else the tiny untrained test model of
tests/fixtures (its masks are meaningless blobs: it shows the workflow, not SAM's quality).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIG_ENV = "AI_SEG_SHOTS"
_FILE = globals().get("__file__")  # unset when QGIS runs this file through --code
ROOT = Path(_FILE).resolve().parents[1] if _FILE else Path(json.loads(os.environ[CONFIG_ENV])["root"])
SCREEN = (1360, 860)
ORIGIN, PIXEL, SIZE = (500000.0, 4650000.0), 0.25, (1024, 720)  # UTM 33N, metres, pixels
# (col, row) of the objects clicked, in raster pixels
HOUSE, POND, HOUSE2 = (300, 250), (760, 470), (520, 230)


# ------------------------------------------------------------------ outside QGIS


def write_aerial(path: str) -> None:
    """Grass, a road, roofs with shadows, trees and a pond, with some texture."""
    import numpy as np
    from osgeo import gdal, osr

    w, h = SIZE
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.float32)
    img[:] = (92, 128, 64)
    img += rng.normal(0, 9, (h, w, 1))
    road = np.abs((yy - 0.18 * xx) - 420) < 26
    img[road] = (150, 148, 140)
    img[np.abs((yy - 0.18 * xx) - 420) < 2] = (230, 230, 220)
    for cx, cy, rw, rh, color in ((300, 250, 70, 48, (168, 72, 56)), (520, 230, 56, 64, (120, 110, 118)),
                                   (180, 560, 60, 40, (176, 96, 60)), (890, 180, 48, 70, (160, 70, 60))):
        img[(np.abs(xx - cx - 8) < rw) & (np.abs(yy - cy - 10) < rh)] *= 0.55  # shadow
        roof = (np.abs(xx - cx) < rw) & (np.abs(yy - cy) < rh)
        img[roof] = color
        img[roof & (np.abs(yy - cy) < 3)] = np.array(color) * 0.7  # ridge
    pond = ((xx - 760) / 120.0) ** 2 + ((yy - 470) / 80.0) ** 2 < 1
    img[pond] = (52, 92, 128)
    for _ in range(40):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(10, 22)
        tree = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        if not (tree & (pond | road)).any():
            img[tree] = (40, 84, 38)
    rgb = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    ds = gdal.GetDriverByName("GTiff").Create(path, w, h, 3, gdal.GDT_Byte, ["COMPRESS=DEFLATE"])
    ds.SetGeoTransform((ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(rgb[..., b])
    ds = None


def models_folder(tmp: Path) -> Path:
    """models/ when it holds an encoder and a decoder, else a folder with the tiny test model."""
    real = ROOT / "models"
    if list(real.glob("*encoder*.onnx")) and list(real.glob("*decoder*.onnx")):
        return real
    folder = tmp / "models"
    folder.mkdir()
    for name in ("tiny.encoder.preproc.onnx", "tiny.decoder.onnx"):
        shutil.copy(ROOT / "tests" / "fixtures" / name, folder / name)
    return folder


def make_profile(tmp: Path, models: Path) -> Path:
    """A QGIS profile with the plugin enabled and the plugin's settings pointing into ``tmp``."""
    profile = tmp / "profiles" / "default"
    plugins = profile / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "ai_segmentation").symlink_to(ROOT, target_is_directory=True)
    deps = profile / "python" / "ai_segmentation_deps" / f"py{sys.version_info[0]}.{sys.version_info[1]}"
    deps.mkdir(parents=True)
    site = Path(__import__("onnxruntime").__file__).resolve().parents[1]
    for entry in site.iterdir():  # onnxruntime and what it imports that Debian's Python lacks
        if entry.name.split("-")[0].split(".")[0] in ("onnxruntime", "flatbuffers", "google", "protobuf"):
            (deps / entry.name).symlink_to(entry)
    ini = profile / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text(
        "[PythonPlugins]\nai_segmentation=true\n\n"
        "[qgis]\nshowTips322=false\ncheckVersion=false\nallowVersionCheck=false\n"
        "askToSaveProjectChanges=false\naskToSaveMemoryLayers=false\n\n"
        f"[ai_segmentation]\nmodels_dir={models}\ncache_dir={tmp / 'cache'}\n",
        encoding="utf-8",
    )
    return tmp


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ai_seg_shots_") as name:
        print("work dir", name, flush=True)
        tmp = Path(name)
        raster = str(tmp / "aerial.tif")
        write_aerial(raster)
        models = models_folder(tmp)
        profiles = make_profile(tmp, models)
        config = {"raster": raster, "out": str(out), "tmp": name, "root": str(ROOT),
                  "untrained": models != ROOT / "models"}
        env = dict(os.environ, **{CONFIG_ENV: json.dumps(config)})
        env.pop("QT_QPA_PLATFORM", None)  # a real X display (Xvfb), not offscreen
        cmd = ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN[0]}x{SCREEN[1]}x24", "qgis", "--profiles-path",
               str(profiles), "--nologo", "--noversioncheck", "--code", str(Path(__file__).resolve())]
        # Own process group: on a timeout, QGIS and Xvfb go with xvfb-run.
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=int(os.environ.get("SHOTS_TIMEOUT", "600")))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            output, _ = proc.communicate()
        log = tmp / "run.json"
        report = json.loads(log.read_text()) if log.exists() else {}
        if report.get("error") or not report.get("files"):
            sys.stderr.write(output[-4000:] + "\n")
            sys.exit(f"screenshots failed: {report.get('error', f'qgis exited {proc.returncode}')}")
        for name in report["files"]:
            print(f"{out / name}: {(out / name).stat().st_size // 1024} KiB")


# ------------------------------------------------------------------ inside QGIS


def in_qgis(config: dict) -> None:
    """Play the usage in the running QGIS, one step per timer tick so that QGIS paints between them."""
    from qgis.core import QgsApplication, QgsPointXY, QgsProject, QgsRasterLayer, QgsRectangle
    from qgis.PyQt.QtCore import QEvent, QPoint, QPointF, QRect, Qt, QTimer
    from qgis.PyQt.QtGui import QColor, QImage, QMouseEvent
    from qgis.PyQt.QtWidgets import QAction, QApplication, QDockWidget
    from qgis.utils import iface, plugins

    out, files, state = Path(config["out"]), [], {}
    window, canvas = iface.mainWindow(), iface.mapCanvas()

    def save(image: QImage, name: str) -> None:
        # 8-bit palette: a quarter of the size, and UI screenshots keep their look
        image.convertToFormat(QImage.Format_Indexed8, Qt.ThresholdDither | Qt.AutoColor).save(str(out / name))
        files.append(name)

    def grab(widget, name: str, rect: QRect = None) -> None:
        save((widget.grab(rect) if rect is not None else widget.grab()).toImage(), name)

    def pixel(col: float, row: float) -> QPoint:
        p = canvas.getCoordinateTransform().transform(QgsPointXY(ORIGIN[0] + col * PIXEL, ORIGIN[1] - row * PIXEL))
        return QPoint(round(p.x()), round(p.y()))

    def click(col: float, row: float, button=Qt.LeftButton) -> None:
        for kind in (QEvent.MouseButtonPress, QEvent.MouseButtonRelease):
            event = QMouseEvent(kind, QPointF(pixel(col, row)), button, button, Qt.NoModifier)
            QgsApplication.sendEvent(canvas.viewport(), event)

    def controller():
        return plugins["ai_segmentation"].controller

    def step_open() -> None:
        window.setGeometry(0, 0, *SCREEN)  # no window manager under Xvfb to maximise it
        for dock in window.findChildren(QDockWidget):
            if dock.objectName() == "Browser":
                dock.hide()
        layer = QgsRasterLayer(config["raster"], "aerial")
        QgsProject.instance().addMapLayer(layer)
        QgsProject.instance().setPresetHomePath(config["tmp"])
        iface.setActiveLayer(layer)
        state["layer"] = layer
        window.findChild(QAction, "AISegmentationAction").trigger()  # the toolbar button
        window.resizeDocks([plugins["ai_segmentation"].dock], [390], Qt.Horizontal)

    def step_encode() -> None:
        iface.zoomToActiveLayer()
        controller().dock.set_layer(state["layer"])
        controller().dock.ui.encode_button.click()

    def encoded() -> bool:
        return not controller().encoder.busy

    def step_click() -> None:
        c = controller()
        c.dock.ui.start_button.click()
        c.dock.ui.label_edit.setText("building")
        click(*HOUSE)

    def step_shot_panel() -> None:
        grab(controller().dock, "01_panel.png")

    def step_prompts() -> None:
        c = controller()
        c.session.clear()
        col, row = HOUSE
        canvas.setExtent(QgsRectangle(ORIGIN[0] + (col - 260) * PIXEL, ORIGIN[1] - (row + 200) * PIXEL,
                                      ORIGIN[0] + (col + 260) * PIXEL, ORIGIN[1] - (row - 200) * PIXEL))
        x0, y0 = ORIGIN[0] + (HOUSE[0] - 95) * PIXEL, ORIGIN[1] - (HOUSE[1] + 70) * PIXEL
        x1, y1 = ORIGIN[0] + (HOUSE[0] + 95) * PIXEL, ORIGIN[1] - (HOUSE[1] - 70) * PIXEL
        c.session.set_box(x0, y0, x1, y1)  # what a left drag on the canvas emits
        click(*HOUSE)
        click(HOUSE[0] + 60, HOUSE[1] + 60, Qt.RightButton)
        iface.messageBar().clearWidgets()
        canvas.refresh()

    def step_shot_prompts() -> None:
        canvas.waitWhileRendering()
        grab(window, "02_prompts_preview.png", QRect(0, 0, SCREEN[0], SCREEN[1] - 30))

    def step_save() -> None:
        c = controller()
        c.dock.ui.largest_only_check.setChecked(True)
        c.dock.ui.fill_holes_spin.setValue(20000)
        c.dock.ui.simplify_spin.setValue(2.0)
        c.save()
        c.dock.ui.label_edit.setText("pond")
        click(*POND)

    def step_save2() -> None:
        c = controller()
        c.session.choose_mask(2)  # Tab: SAM's third candidate
        c.save()
        c.dock.ui.label_edit.setText("building")
        click(*HOUSE2)

    def step_save3() -> None:
        iface.zoomToActiveLayer()
        c = controller()
        c.session.choose_mask(2)
        c.save()
        layer = c.output.layer
        symbol = layer.renderer().symbol()
        symbol.setColor(QColor(255, 200, 0, 70))
        symbol.symbolLayer(0).setStrokeColor(QColor(255, 120, 0))
        symbol.symbolLayer(0).setStrokeWidth(0.6)
        layer.triggerRepaint()
        canvas.refresh()

    def step_shot_saved() -> None:
        canvas.waitWhileRendering()
        grab(window, "03_saved_polygons.png", QRect(0, 0, SCREEN[0], SCREEN[1] - 30))

    def step_menu() -> None:
        iface.messageBar().clearWidgets()
        menu = iface.rasterMenu()
        menu.popup(window.mapToGlobal(QPoint(390, 22)))
        entry = next(a for a in menu.actions() if a.menu() is not None and "AI Segmentation" in a.text())
        menu.setActiveAction(entry)
        entry.menu().popup(menu.mapToGlobal(menu.actionGeometry(entry).topRight()))

    def step_shot_menu() -> None:
        sub = next(a.menu() for a in iface.rasterMenu().actions() if a.menu() and "AI Segmentation" in a.text())
        top = iface.rasterMenu().geometry().united(sub.geometry()).adjusted(-8, -30, 8, 8)
        save(QApplication.primaryScreen().grabWindow(0, top.x(), top.y(), top.width(), top.height()).toImage(),
             "04_raster_menu.png")
        sub.hide()
        iface.rasterMenu().hide()

    def step_quit() -> None:
        (Path(config["tmp"]) / "run.json").write_text(json.dumps({"files": files}))
        QgsProject.instance().clear()
        QTimer.singleShot(500, QgsApplication.instance().quit)

    steps = [(step_open, 2500), (step_encode, 500), (None, encoded), (step_click, 1500), (None, encoded),
             (step_shot_panel, 300), (step_prompts, 1500), (step_shot_prompts, 500), (step_save, 1500),
             (None, encoded), (step_save2, 1500), (None, encoded), (step_save3, 2500), (step_shot_saved, 500),
             (step_menu, 1000), (step_shot_menu, 300), (step_quit, 0)]

    def trace(text: str) -> None:
        with open(Path(config["tmp"]) / "trace.txt", "a", encoding="utf-8") as fh:
            fh.write(text + "\n")

    def run(i: int = 0) -> None:
        try:
            fn, then = steps[i]
            trace(f"step {i} {getattr(fn, '__name__', 'wait')}")
            if fn is None:  # wait until a condition holds
                QTimer.singleShot(300, lambda: run(i + 1 if then() else i))
                return
            fn()
            if i + 1 < len(steps):
                QTimer.singleShot(then, lambda: run(i + 1))
        except Exception as exc:  # report, then quit: never hang under Xvfb
            import traceback

            (Path(config["tmp"]) / "run.json").write_text(
                json.dumps({"files": files, "error": f"{exc}\n{traceback.format_exc()}"}))
            QgsApplication.instance().quit()

    trace("scheduled")
    QTimer.singleShot(1000, run)


if os.environ.get(CONFIG_ENV) and "qgis.utils" in sys.modules:
    in_qgis(json.loads(os.environ[CONFIG_ENV]))
elif __name__ == "__main__":
    main()
