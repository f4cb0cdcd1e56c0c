"""Execution providers on the CPU: the plan, the fallbacks (at start and at run), release,
settings, the cache decision and batched "segment everything" decoding.

This machine has no GPU: a session that "runs on CUDA" is a stand-in that raises as a failing
provider does; every result compared is computed by the real CPU session.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
from family_models import FAMILY_FILES
from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QSettings
from sam_cases import make_image

from core.families import onnx_session as ox
from core.families import providers as pv
from core.sam_decoder import SamDecoder
from core.sam_encoder import SamEncoder
from tools.plugin_package import plugin_module

CUDA, CPU = pv.CUDA, pv.CPU
CHOICE = pv.ProviderChoice(CUDA, device_id=1, gpu_mem_mb=2048)


@pytest.mark.parametrize(("available", "wanted"), [
    ([CUDA, CPU], CUDA), ([pv.TENSORRT, CUDA, CPU], CUDA), ([pv.DIRECTML, CPU], pv.DIRECTML),
    ([pv.COREML, CPU], pv.COREML), ([pv.OPENVINO, CPU], pv.OPENVINO), ([pv.OPENVINO, pv.DIRECTML, CPU], pv.DIRECTML),
    (["AzureExecutionProvider", CPU], CPU), ([pv.TENSORRT, CPU], CPU), ([CPU], CPU), ([], CPU)])
def test_auto_takes_the_best_available_and_never_tensorrt(available, wanted):
    plan = pv.plan(pv.ProviderChoice(), available)
    assert plan.wanted == wanted and plan.note == ""
    assert plan.providers[-1] == (CPU, {})  # the CPU takes whatever the provider cannot run
    assert len(plan.providers) == (1 if wanted == CPU else 2)


def test_named_provider_options_and_bound():
    plan = pv.plan(CHOICE, [CUDA, CPU])
    assert plan.providers == [(CUDA, {"device_id": "1", "gpu_mem_limit": str(2048 * 1024 * 1024),
                                      "arena_extend_strategy": "kSameAsRequested",
                                      "cudnn_conv_algo_search": "HEURISTIC"}), (CPU, {})]
    assert pv.plan(pv.ProviderChoice(pv.DIRECTML, 2), [pv.DIRECTML, CPU]).providers[0] == (pv.DIRECTML,
                                                                                           {"device_id": "2"})
    assert pv.provider_options(pv.OPENVINO, pv.ProviderChoice(pv.OPENVINO, 1)) == {"device_type": "GPU.1",
                                                                                   "precision": "FP32"}
    assert pv.shrink_entry(CUDA, 1) == "cpu:0;gpu:1" and pv.shrink_entry(CPU, 0) == "cpu:0"
    assert pv.plan(pv.ProviderChoice(CPU), [CUDA, CPU]).providers == [(CPU, {})]


def test_named_provider_not_installed_says_what_to_install():
    plan = pv.plan(CHOICE, ["AzureExecutionProvider", CPU])
    assert plan.providers == [(CPU, {})]
    assert plan.note == ("CUDA is set in Options, but the installed onnxruntime does not offer it (it offers "
                         "Azure, CPU): running on the CPU. Install onnxruntime-gpu from the AI Segmentation "
                         "setup dialog, or choose Auto")
    assert "'ROCm' set in Options is not one this plugin knows" in pv.plan(pv.ProviderChoice("ROCm"), [CPU]).note


def _outputs(session, feed):
    return session.run(["iou_predictions", "low_res_masks"], feed)


@pytest.fixture(scope="module")
def feed():
    return {"image_embeddings": np.random.default_rng(0).normal(size=(1, 256, 64, 64)).astype(np.float32),
            "point_coords": np.array([[[300.0, 200.0], [0.0, 0.0]]], np.float32),
            "point_labels": np.array([[1.0, -1.0]], np.float32),
            "mask_input": np.zeros((1, 1, 256, 256), np.float32), "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.array([256.0, 256.0], np.float32)}


def test_real_onnxruntime_leaves_out_a_provider_that_cannot_start(tiny_paths, feed, caplog):
    """Asked for CUDA it has not got, onnxruntime opens on the CPU alone: the session says so once."""
    path = str(tiny_paths["decoder"])
    with caplog.at_level(logging.WARNING, "ai_segmentation"), pytest.warns(UserWarning, match="CUDA"):
        session = ox.open_session(path, "decoder", provider=CHOICE, available=[CUDA, CPU])
    assert session.provider == CPU and not session.on_gpu and session.get_providers() == [CPU]
    assert session.note.startswith("CUDA could not start (onnxruntime left it out")
    assert session.note.endswith("; running on the CPU")
    assert [r.getMessage() for r in caplog.records] == [f"SAM decoder model '{path}': {session.note}."]
    cpu = ox.open_session(path, "decoder")
    for got, want in zip(_outputs(session, feed), _outputs(cpu, feed)):
        np.testing.assert_array_equal(got, want)
    text, warning = pv.describe([("decoder", session)])
    assert warning and text == "Runs on CPU: decoder. " + session.note[0].upper() + session.note[1:]


def test_installed_onnxruntime_plans_without_a_note_on_auto(tiny_paths):
    session = ox.open_session(str(tiny_paths["decoder"]), "decoder", provider=pv.ProviderChoice())
    assert session.provider == CPU and session.note == ""  # this onnxruntime offers no GPU provider
    assert pv.describe([("encoder", session), ("decoder", session)]) == ("Runs on CPU: encoder and decoder", False)
    assert pv.describe([]) == ("", False)


class FakeGpuSession:
    """What a GPU provider that fails looks like to the plugin: it opened, lists CUDA, and raises."""

    def __init__(self, cpu, fail: str = "") -> None:
        self.cpu, self.fail, self.runs = cpu, fail, 0

    def get_providers(self):
        return [CUDA, CPU]

    def get_inputs(self):
        return self.cpu.get_inputs()

    def get_outputs(self):
        return self.cpu.get_outputs()

    def run(self, outputs, feed, run_options=None):
        self.runs += 1
        if self.fail:
            raise RuntimeError(self.fail + "\nstack trace lines")
        return self.cpu.run(outputs, feed, run_options)


def _managed(path, gpu_factory):
    """A ManagedSession planned for CUDA whose GPU sessions come from ``gpu_factory(cpu)``."""
    opened = []

    def open_on(providers):
        cpu = ox.open_session(path, "decoder")
        session = cpu if providers[0][0] == CPU else gpu_factory(cpu)
        opened.append((providers[0][0], session))
        return session

    return pv.ManagedSession(open_on, pv.plan(CHOICE, [CUDA, CPU]), f"SAM decoder model '{path}'", 1), opened


def test_provider_that_raises_at_start_falls_back(tiny_paths, feed, caplog):
    def broken(_cpu):
        raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")

    with caplog.at_level(logging.WARNING, "ai_segmentation"):
        session, opened = _managed(str(tiny_paths["decoder"]), broken)
    assert session.provider == CPU and [p for p, _ in opened] == [CPU]
    assert session.note == ("CUDA could not start (CUDA failure 100: no CUDA-capable device is detected); "
                            "running on the CPU")
    assert len(caplog.records) == 1
    assert _outputs(session, feed)[0].shape == (1, 4)


def test_run_failure_on_the_gpu_reruns_on_the_cpu_for_good(tiny_paths, feed, caplog):
    path = str(tiny_paths["decoder"])
    with caplog.at_level(logging.WARNING, "ai_segmentation"):
        session, opened = _managed(path, lambda cpu: FakeGpuSession(cpu, "CUDNN_STATUS_EXECUTION_FAILED"))
        assert session.provider == CUDA and session.on_gpu and session.note == ""
        got = _outputs(session, feed)
        again = _outputs(session, feed)
    assert session.provider == CPU
    assert session.note == "CUDA failed while running (CUDNN_STATUS_EXECUTION_FAILED); running on the CPU"
    assert [p for p, _ in opened] == [CUDA, CPU] and opened[0][1].runs == 1  # the GPU is not tried again
    assert len(caplog.records) == 1
    want = _outputs(ox.open_session(path, "decoder"), feed)
    for a, b, c in zip(got, again, want):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)


def test_a_cancelled_gpu_run_is_not_rerun(tiny_paths, feed):
    session, opened = _managed(str(tiny_paths["decoder"]),
                               lambda cpu: FakeGpuSession(cpu, "Exiting due to terminate flag"))
    ro = ox.shrinking_run_options(pv.shrink_entry(session.provider, session.device_id))
    ro.terminate = True
    with pytest.raises(RuntimeError, match="terminate flag"):
        session.run(["iou_predictions"], feed, ro)
    assert session.provider == CUDA and len(opened) == 1


def test_release_drops_a_gpu_session_and_the_next_run_reopens_it(tiny_paths, feed):
    session, opened = _managed(str(tiny_paths["decoder"]), FakeGpuSession)
    first = _outputs(session, feed)
    assert session.release() is True and session.release() is False  # nothing held the second time
    second = _outputs(session, feed)
    assert [p for p, _ in opened] == [CUDA, CUDA]
    np.testing.assert_array_equal(first[1], second[1])
    cpu = ox.open_session(str(tiny_paths["decoder"]), "decoder")
    assert cpu.release() is False and _outputs(cpu, feed)[0].shape == (1, 4)  # CPU sessions stay


def test_engine_facades_and_segmenter_report_where_they_run(tiny_paths):
    enc = SamEncoder(tiny_paths["encoder"], provider=CHOICE)
    dec = SamDecoder(tiny_paths["decoder"], provider=pv.ProviderChoice(CPU))
    assert enc.session.provider == CPU and "onnxruntime-gpu" in enc.session.note
    assert dec.session.provider == CPU and dec.session.note == ""
    text, warning = pv.describe([("encoder", enc.session), ("decoder", dec.session)])
    assert warning and text.startswith("Runs on CPU: encoder and decoder. CUDA is set in Options")


def test_settings_store_the_provider(qgis_app, tmp_path):
    Settings, pv = plugin_module("toolbelt.settings").Settings, plugin_module("core.families.providers")  # noqa: N806
    qs = QgsSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    Settings(provider=pv.DIRECTML, device_id=2, gpu_mem_mb=3000).save(qs)
    loaded = Settings.load(qs)
    assert loaded.provider_choice == pv.ProviderChoice(pv.DIRECTML, 2, 3000)
    qs.setValue("ai_segmentation/provider", "QuantumExecutionProvider")
    qs.setValue("ai_segmentation/gpu_mem_mb", "12")
    again = Settings.load(qs)
    assert again.provider == pv.AUTO and again.gpu_mem_mb == 256
    assert Settings().provider_choice == pv.ProviderChoice(pv.AUTO, 0, pv.DEFAULT_GPU_MEM_MB)


def test_embeddings_from_differently_optimised_graphs_make_the_same_cache_entry(tiny_paths):
    """The decision: providers share cache entries. Another provider runs other kernels; on the CPU,
    a graph run without any optimisation does too. The float16 entries then agree to float16
    rounding, and masks decoded from them agree."""
    ort = ox.import_onnxruntime()
    path = str(tiny_paths["encoder"])
    plain = ox.session_options(None)
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    enc = SamEncoder(path)
    other = SamEncoder(path)
    other._impl.session = pv.ManagedSession(lambda _providers: ort.InferenceSession(path, plain, providers=[CPU]),
                                            pv.Plan([(CPU, {})]), "unoptimised encoder")
    image = make_image(300, 420)
    a, b = enc.encode(image), other.encode(image)
    cos = float(np.dot(a.embeddings.ravel(), b.embeddings.ravel())
                / np.linalg.norm(a.embeddings) / np.linalg.norm(b.embeddings))
    assert cos >= 0.9999 and not np.array_equal(a.embeddings, b.embeddings)
    ha, hb = a.embeddings.astype(np.float16), b.embeddings.astype(np.float16)
    assert float(np.abs(ha.astype(np.float32) - hb.astype(np.float32)).max()) <= 2e-3 * float(np.abs(ha).max())
    dec = SamDecoder(tiny_paths["decoder"])
    ma = dec.predict(replace(a, embeddings=ha.astype(np.float32)), [[200, 150]], [1]).masks
    mb = dec.predict(replace(b, embeddings=hb.astype(np.float32)), [[200, 150]], [1]).masks
    iou = (ma & mb).sum() / max(1, (ma | mb).sum())
    assert iou >= 0.99


def test_cache_entry_from_the_cpu_serves_another_provider_choice(tmp_path, tiny_paths):
    from test_segmenter import raster, to_map

    from core.raster.raster_source import RasterSource
    from core.segment.embedding_cache import EmbeddingCache
    from core.segment.segmenter import MapPrompt, NotEncodedError, RasterSegmenter

    path = raster(tmp_path / "r.tif", 900, 700)
    cache = EmbeddingCache(str(tmp_path / "cache"))
    files = FAMILY_FILES["sam"]
    cpu = RasterSegmenter(RasterSource.open(path), files["encoder"][0], files["decoder"][0], cache,
                          provider=pv.ProviderChoice(CPU))
    prompt = MapPrompt(points=(to_map(300.5, 300.5),), labels=(1,))
    with pytest.raises(NotEncodedError) as err:
        cpu.segment(prompt)
    cpu.encode(err.value.crop)
    gpu = RasterSegmenter(RasterSource.open(path), files["encoder"][0], files["decoder"][0], cache,
                          provider=CHOICE)
    assert gpu.is_encoded(err.value.crop) and gpu._key(err.value.crop) == cpu._key(err.value.crop)
    np.testing.assert_array_equal(gpu.segment(prompt).masks, cpu.segment(prompt).masks)
    assert gpu._encoder is None  # answered from the entry the CPU wrote


@pytest.mark.parametrize("family", ["sam", "sam2", "efficientsam"])
def test_segment_everything_binds_the_image_once_with_the_same_results(family):
    """On CUDA the point runner binds the image's tensors on the device once per crop (IOBinding);
    bound in host memory here, every run gives exactly the plain run's outputs."""
    files = FAMILY_FILES[family]
    if not files["decoder"][0].exists():
        pytest.skip(f"{family} fixtures not generated")
    bundle = SamEncoder(files["encoder"][0]).encode(make_image(200, 260))
    dec = SamDecoder(files["decoder"][0])
    session = dec.session
    runner = dec.point_runner(bundle)  # on the CPU: plain runs
    real = session.bound_runner
    session.bound_runner = lambda constants, outputs: real(constants, outputs, device="cpu")
    host = dec.point_runner(bundle)  # the family's runner, its image bound in host memory
    calls = []
    plain_run = session.run
    session.run = lambda *a, **k: calls.append(1) or plain_run(*a, **k)
    for point in ([30.0, 40.0], [100.5, 120.25], [199.0, 0.0]):
        want, got = runner(np.array(point)), host(np.array(point))
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert got[1].shape == (3, 256, 256)
    assert len(calls) == 3  # the plain runner's runs only: the bound one went through IOBinding


def test_a_bound_run_that_fails_on_the_gpu_falls_back(tiny_paths, feed):
    class FailingBinding(FakeGpuSession):
        def io_binding(self):
            return self.cpu._open().io_binding()

        def run_with_iobinding(self, _binding):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    session, opened = _managed(str(tiny_paths["decoder"]), FailingBinding)
    names = ["iou_predictions", "low_res_masks"]
    constants = {k: v for k, v in feed.items() if k not in ("point_coords", "point_labels")}
    run = session.bound_runner(constants, names, device="cpu")
    got = run({"point_coords": feed["point_coords"], "point_labels": feed["point_labels"]})
    assert session.provider == CPU and session.note.startswith("CUDA failed while running (CUDA error")
    want = _outputs(ox.open_session(str(tiny_paths["decoder"]), "decoder"), feed)
    np.testing.assert_array_equal(got[1], want[1])
    again = run({"point_coords": feed["point_coords"], "point_labels": feed["point_labels"]})
    np.testing.assert_array_equal(again[0], want[0])
    assert [p for p, _ in opened] == [CUDA, CPU]


def test_the_panel_watch_gives_idle_gpu_memory_back(qgis_app, qtbot, tiny_paths, feed):
    watch_module = plugin_module("gui.runtime_watch")
    session, opened = _managed(str(tiny_paths["decoder"]), FakeGpuSession)

    class Models:  # what the watch asks of a RasterSegmenter
        def runs_on(self):
            return [("decoder", session)]

    shown = []
    watch = watch_module.RuntimeWatch(lambda text, warning: shown.append((text, warning)))
    watch._timer.setInterval(50)
    models = Models()
    watch.touch(models)
    assert shown == [("Runs on CUDA (GPU 1): decoder", False)] and watch._timer.isActive()
    qtbot.waitUntil(lambda: session._session is None, timeout=5000)  # released after the idle time
    _outputs(session, feed)  # the next click reopens it
    assert [p for p, _ in opened] == [CUDA, CUDA]
    cpu = ox.open_session(str(tiny_paths["decoder"]), "decoder")
    models.runs_on = lambda: [("decoder", cpu)]
    watch.touch(models)
    assert shown[-1] == ("Runs on CPU: decoder", False) and not watch._timer.isActive()  # nothing to give back
    watch.touch(None)
    assert shown[-1] == ("", False)
