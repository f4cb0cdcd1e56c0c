"""The int8 encoder: built from the tiny encoder, found by discovery and the setup dialog, close to fp32."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from family_models import FAMILY_FILES, family_params

from core.errors import MissingDependencyError, ModelError
from core.families import quantize
from core.models import model_manager as mm
from core.sam_decoder import SamDecoder
from core.sam_encoder import SamEncoder
from tools.plugin_package import plugin_module

needs_onnx = pytest.mark.skipif(
    quantize.unavailable_reason() is not None,
    reason="onnxruntime.quantization needs the onnx package (requirements-dev.txt)",
)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def models(tmp_path, tiny_paths) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for key in ("encoder_preproc", "decoder"):
        shutil.copy(tiny_paths[key], folder / tiny_paths[key].name)
    return folder


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_int8_name_sits_beside_the_source():
    assert quantize.int8_path("/m/vit_b.encoder.preproc.onnx") == Path("/m/vit_b.encoder.preproc.int8.onnx")
    assert mm.precision_of(quantize.int8_path("tiny.encoder.onnx")) == "int8"


def test_without_onnx_the_reason_is_explained(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # what an absent package looks like to find_spec
    reason = quantize.unavailable_reason()
    assert "needs the Python package(s) onnx" in reason and "pip install onnx" in reason
    with pytest.raises(MissingDependencyError, match="onnx"):
        quantize.build_int8_encoder(models / "tiny.encoder.preproc.onnx")
    assert sorted(os.listdir(models)) == ["tiny.decoder.onnx", "tiny.encoder.preproc.onnx"]


@needs_onnx
def test_int8_encoder_is_picked_up_and_close_to_fp32(models):
    src = models / "tiny.encoder.preproc.onnx"
    built = quantize.build_int8_encoder(src)
    out = built.path
    assert out == models / "tiny.encoder.preproc.int8.onnx"
    assert sorted(os.listdir(models)) == ["tiny.decoder.onnx", "tiny.encoder.preproc.int8.onnx",
                                          "tiny.encoder.preproc.onnx"]  # no temporary file left
    assert b"MatMulInteger" in out.read_bytes() and b"MatMulInteger" not in src.read_bytes()
    assert out.stat().st_size < src.stat().st_size

    entries = {Path(e.path).name: e for e in mm.discover([models])}
    int8 = entries[out.name]
    assert int8.ok and int8.role == "encoder" and int8.precision == "int8" and SamEncoder(out).preprocess_in_graph
    assert mm.best_pair(list(entries.values())) == (str(out), str(models / "tiny.decoder.onnx"))

    image = np.random.default_rng(3).integers(0, 256, (300, 420, 3), dtype=np.uint8)
    ref = SamEncoder(src).encode(image)
    emb = SamEncoder(out).encode(image)
    assert emb.embeddings.shape == (1, 256, 64, 64) and emb.input_size == ref.input_size
    assert _cosine(ref.embeddings, emb.embeddings) >= 0.999
    # the reported cosine is the one on the fixed reference image
    fixed = quantize.reference_image()
    want = _cosine(SamEncoder(src).encode(fixed).embeddings, SamEncoder(out).encode(fixed).embeddings)
    assert built.cosines == {"image_embeddings": pytest.approx(want, abs=1e-9)} and built.cosine == built.cosines[
        "image_embeddings"] and 0.999 <= built.cosine < 1.0
    assert np.linalg.norm(ref.embeddings - emb.embeddings) / np.linalg.norm(ref.embeddings) < 0.05
    pred = SamDecoder(models / "tiny.decoder.onnx").predict(emb, points=[[200, 150]], labels=[1])
    assert pred.masks.shape == (3, 300, 420)


@needs_onnx
def test_a_decoder_is_refused_and_nothing_written(models):
    with pytest.raises(ModelError, match=r"decoder, not an encoder: choose the encoder file"):
        quantize.build_int8_encoder(models / "tiny.decoder.onnx", models / "x.int8.onnx")
    src = models / "tiny.encoder.preproc.onnx"
    with pytest.raises(ModelError, match="would overwrite its source"):
        quantize.build_int8_encoder(src, src)
    assert sorted(os.listdir(models)) == ["tiny.decoder.onnx", "tiny.encoder.preproc.onnx"]




def _dialog(qtbot, models: Path, tmp_path: Path):
    SetupDialog = plugin_module("gui.setup.setup_dialog").SetupDialog  # noqa: N806

    dlg = SetupDialog(None, models_dir=str(models), profile_dir=str(tmp_path / "profile"))
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=60000)
    return dlg


def test_setup_dialog_lists_models_and_dependencies(qgis_app, qtbot, models, tmp_path):
    dlg = _dialog(qtbot, models, tmp_path)
    mine = [e for e in dlg.entries if Path(e.path).parent == models]
    assert sorted(Path(e.path).name for e in mine) == ["tiny.decoder.onnx", "tiny.encoder.preproc.onnx"]
    texts = [dlg.model_list.item(i).text() for i in range(dlg.model_list.count())]
    assert any(t.startswith("tiny.encoder.preproc.onnx") and "fp32 encoder" in t for t in texts)
    assert "onnxruntime: " in dlg.deps_label.text() and "ai_segmentation_deps" in dlg.deps_label.text()
    assert (tmp_path / "profile" / "ai_segmentation" / "model_index.json").is_file()


@needs_onnx
def test_setup_dialog_builds_and_selects_the_int8_encoder(qgis_app, qtbot, models, tmp_path):
    dlg = _dialog(qtbot, models, tmp_path)
    with qtbot.waitSignal(dlg.modelsChanged, timeout=120000) as blocker:
        dlg.build_int8()
    assert blocker.args == [str(models / "tiny.encoder.preproc.int8.onnx"), str(models / "tiny.decoder.onnx")]
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=60000)
    assert "Will use: tiny.encoder.preproc.int8.onnx + tiny.decoder.onnx" in dlg.pair_label.text()


@needs_onnx
@pytest.mark.parametrize("family", [f for f in family_params() if f != "sam"])
def test_int8_build_for_every_family_reports_its_cosine(family, tmp_path):
    src = tmp_path / f"{family}.encoder.onnx"
    shutil.copy(FAMILY_FILES[family]["encoder"][0], src)
    built = quantize.build_int8_encoder(src)
    assert built.path == tmp_path / f"{family}.encoder.int8.onnx" and b"MatMulInteger" in built.path.read_bytes()
    int8 = SamEncoder(built.path)
    assert int8.family.name == family
    bundle = int8.encode(quantize.reference_image())
    ref = SamEncoder(src).encode(quantize.reference_image())
    assert set(built.cosines) == set(bundle.tensors)
    for name, value in bundle.tensors.items():
        assert built.cosines[name] == pytest.approx(_cosine(ref.tensors[name], value), abs=1e-9)
    assert built.cosine == min(built.cosines.values()) and 0.99 <= built.cosine < 1.0
    print(f"\n{family} int8 cosines: {built.cosines}")
