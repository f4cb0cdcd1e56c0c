"""Encoding tasks run for real in QgsApplication.taskManager()."""

from __future__ import annotations

import importlib.util
import os
import threading
import time

import numpy as np
import pytest
from osgeo import gdal
from slow_model import write_slow_encoder

from core.families.onnx_session import CancelToken, EncodeCancelledError
from core.raster.raster_source import RasterSource
from core.sam_encoder import SamEncoder
from core.segment.embedding_cache import EmbeddingCache
from core.segment.segmenter import MapPrompt, RasterSegmenter

GT = (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5)


@pytest.fixture
def segmenter(tiny_paths, tmp_path):
    def _make(w=1800, h=1800, encoder=None):
        path = str(tmp_path / f"r{w}x{h}.tif")
        if not os.path.exists(path):
            ds = gdal.GetDriverByName("GTiff").Create(path, w, h, 3, gdal.GDT_Byte, ["TILED=YES"])
            ds.SetGeoTransform(GT)
            for b in range(1, 4):
                values = np.random.default_rng(b).integers(0, 255, (h, w), dtype=np.uint8)
                ds.GetRasterBand(b).WriteArray(values)
            del ds
        return RasterSegmenter(RasterSource.open(path), encoder or tiny_paths["encoder_preproc"],
                               tiny_paths["decoder"], EmbeddingCache(str(tmp_path / "cache")))
    return _make


def start(task, qtbot):
    """Run ``task`` in the task manager; returns (completed?, progress values seen).

    The manager deletes the C++ task once finished: only its Python attributes stay readable.
    """
    from qgis.core import QgsApplication

    progress, result = [], []
    task.progressChanged.connect(progress.append)
    task.taskCompleted.connect(lambda: result.append(True))
    task.taskTerminated.connect(lambda: result.append(False))
    QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: bool(result), timeout=120000)
    qtbot.wait(50)  # let queued progress signals arrive
    return result[0], progress


def no_temp_files(seg):
    return not [f for _, _, fs in os.walk(seg.cache.directory) for f in fs if f.startswith(".tmp-")]


def test_crop_task_encodes_off_the_gui_thread(segmenter, qgis_app, qtbot):
    from core.segment.encode_task import EncodeCropTask

    seg = segmenter(900, 700)  # one crop: no edge to re-centre from
    prompt = MapPrompt(points=((500000 + 100.25, 5000000 - 100.25),), labels=(1,))
    crop = seg.crop_for(prompt)
    threads = []
    real = seg.encode
    seg.encode = lambda c, is_canceled: threads.append(threading.get_ident()) or real(c, is_canceled)
    task = EncodeCropTask(seg, crop)
    ok, progress = start(task, qtbot)
    assert ok and task.error is None and progress[-1] == 100.0
    assert threads and threads[0] != threading.get_ident()
    assert seg.is_encoded(crop)
    assert seg.segment(prompt).crop == crop  # the click after it is answered from the cache


def test_extent_task_progress_eta_then_resume_skips_all(segmenter, qgis_app, qtbot):
    from core.segment.encode_task import EncodeExtentTask

    seg = segmenter()
    crops = seg.crops_in_extent()
    assert len(crops) == 4
    task = EncodeExtentTask(seg, crops)
    ok, progress = start(task, qtbot)
    assert ok and (task.encoded, task.skipped, task.remaining) == (4, 0, 0)
    assert progress == sorted(progress) and progress[-1] == 100.0 and 25.0 in progress
    assert task.status_text() == "4 of 4 crops encoded" and task.eta_seconds == 0.0
    assert all(seg.is_encoded(c) for c in crops) and no_temp_files(seg)
    again = EncodeExtentTask(seg, crops)
    ok, _ = start(again, qtbot)
    assert ok and (again.encoded, again.skipped) == (0, 4)
    assert "(4 already cached)" in again.status_text()


def test_cancel_then_resume_leaves_no_partial_entries(segmenter, qgis_app, qtbot):
    from core.segment.encode_task import EncodeExtentTask

    seg = segmenter(2000, 1800)
    crops = seg.crops_in_extent()
    assert len(crops) == 6
    task = EncodeExtentTask(seg, crops)
    done = []
    real = seg.encode

    def encode_then_cancel(crop, is_canceled):
        real(crop, is_canceled)
        done.append(crop)
        if len(done) == 2:
            task.cancel()  # the user presses cancel while the second crop finishes

    seg.encode = encode_then_cancel
    ok, _ = start(task, qtbot)
    assert not ok and task.encoded == 2 and len(done) == 2  # the crop finished as cancel came is kept, and counted
    cached = [c for c in crops if seg.is_encoded(c)]
    assert cached == crops[:2] and all(seg.embedding(c) is not None for c in cached) and no_temp_files(seg)
    seg.encode = real
    resumed = EncodeExtentTask(seg, crops)
    ok, _ = start(resumed, qtbot)
    assert ok and (resumed.encoded, resumed.skipped) == (4, 2)
    assert all(seg.is_encoded(c) for c in crops)


def test_cancel_during_a_crop_writes_nothing(segmenter):
    seg = segmenter()
    crop = seg.crops_in_extent()[0]
    answers = iter([False, True])  # not cancelled before the read, cancelled before the encoder runs
    seg.encode(crop, lambda: next(answers))
    assert not seg.is_encoded(crop) and no_temp_files(seg)


def test_failing_task_reports_a_clear_error(segmenter, qgis_app, qtbot, tmp_path):
    from core.segment.encode_task import EncodeCropTask

    seg = segmenter(encoder=str(tmp_path / "nope.onnx"))
    crop = seg.crops_in_extent()[0]
    (tmp_path / "nope.onnx").write_bytes(b"x" * 64)  # hashable, but not a model
    task = EncodeCropTask(seg, crop)
    ok, _ = start(task, qtbot)
    assert not ok and "could not be loaded" in task.error and "nope.onnx" in task.error
    assert not os.path.isdir(os.path.join(seg.cache.directory, "embeddings"))  # nothing cached


needs_onnx = pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="the slow test graph needs onnx")


@needs_onnx
def test_cancel_terminates_a_running_encode_within_a_second(tmp_path):
    """RunOptions.terminate: the encoder stops mid-run (a 600-MatMul graph takes ~15 s) and raises."""
    encoder = SamEncoder(write_slow_encoder(tmp_path / "slow.encoder.onnx", 600))
    token = CancelToken()
    outcome = {}

    def work():
        try:
            outcome["result"] = encoder.encode(np.zeros((100, 100, 3), np.uint8), token)
        except EncodeCancelledError:
            outcome["cancelled_at"] = time.perf_counter()

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.perf_counter() + 30
    while not token.running and time.perf_counter() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # well inside the run
    assert token.running
    start = time.perf_counter()
    token.cancel()
    thread.join(30)
    assert "result" not in outcome and "cancelled_at" in outcome and not token.running
    assert outcome["cancelled_at"] - start < 1.0


@needs_onnx
def test_cancelling_the_task_stops_the_crop_being_encoded(segmenter, qgis_app, qtbot, tmp_path):
    """The task manager's cancel (C++ calling the task's cancel()) terminates the encoder run:
    the task ends within a second, without an error, with nothing cached."""
    from qgis.core import QgsApplication

    from core.segment.encode_task import EncodeCropTask

    seg = segmenter(900, 700, encoder=write_slow_encoder(tmp_path / "slow.encoder.onnx", 600))
    crop = seg.crops_in_extent()[0]
    task = EncodeCropTask(seg, crop)
    ended = []
    task.taskTerminated.connect(lambda: ended.append(time.perf_counter()))
    task.taskCompleted.connect(lambda: ended.append(None))
    QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: task.token.running, timeout=30000)
    qtbot.wait(300)
    start = time.perf_counter()
    QgsApplication.taskManager().cancelAll()
    qtbot.waitUntil(lambda: bool(ended), timeout=30000)
    assert ended[0] is not None and ended[0] - start < 1.0
    assert task.error is None and not seg.is_encoded(crop) and no_temp_files(seg)
