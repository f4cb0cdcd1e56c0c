"""Model families: detection from the graph header, probe vs onnxruntime, bad files, pairs."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from family_models import FAMILY_FILES, family_params

from core.errors import ModelError
from core.families import detect
from core.families import onnx_session as ox
from core.families.signature import read_signature
from core.sam_decoder import SamDecoder
from core.sam_encoder import SamEncoder


def _unknown_graph(path) -> str:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["pixels"], ["features"])], "g",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 3, 512, 512])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3, 512, 512])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize(("family", "role", "path"), [
    (fam, role, p) for fam, files in FAMILY_FILES.items() for role in ("encoder", "decoder")
    for p in files[role]], ids=lambda v: getattr(v, "name", v))
def test_probe_reads_family_and_role_without_onnxruntime(family, role, path, monkeypatch):
    if not path.exists():
        pytest.skip(f"{path.name} not generated")
    want_ins, want_outs = ox.signature(ox.open_session(str(path), role))
    monkeypatch.setattr(ox, "import_onnxruntime", lambda: pytest.fail("probe opened onnxruntime"))
    assert detect.probe(path) == (family, role)
    assert read_signature(str(path)) == (want_ins, want_outs)  # the protobuf reader agrees with onnxruntime


def test_unknown_graph_is_named_with_what_was_found(tmp_path):
    path = _unknown_graph(tmp_path / "resnet.onnx")
    with pytest.raises(ModelError) as err:
        detect.probe(path)
    msg = str(err.value)
    assert "resnet.onnx' is not a model this plugin knows" in msg
    assert "found pixels (rank 4) -> features (rank 4)" in msg
    assert "SAM / MobileSAM encoder: input input_image" in msg and "SAM 2 / 2.1 decoder" in msg
    for cls, role in ((SamEncoder, "encoder"), (SamDecoder, "decoder")):
        with pytest.raises(ModelError, match=rf"resnet\.onnx' is not a SAM {role} exported by samexporter, nor "
                                             rf"an? {role} of another family.*found pixels \(rank 4\)"):
            cls(path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "missing"])
def test_probe_of_bad_files(damage, tiny_paths, tmp_path):
    path = tmp_path / f"{damage}.onnx"
    data = tiny_paths["encoder_preproc"].read_bytes()
    if damage == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    want = {"garbage": "could not be loaded", "truncated": f"or it is truncated ({len(data) // 2} bytes)",
            "empty": "holds only 0 bytes", "missing": "does not exist"}[damage]
    with pytest.raises(ModelError, match=re.escape(want)) as err:
        detect.probe(path)
    assert f"{damage}.onnx" in str(err.value)


@pytest.mark.parametrize("family", family_params())
def test_check_pair_accepts_one_family_and_refuses_swapped_roles(family):
    enc, dec = FAMILY_FILES[family]["encoder"][0], FAMILY_FILES[family]["decoder"][0]
    assert detect.check_pair(enc, dec).name == family
    with pytest.raises(ModelError, match=rf"{dec.name}' is a .* decoder, not an encoder: choose the encoder file"):
        detect.check_pair(dec, enc)


def test_wrong_role_is_refused_before_a_session_opens(tiny_paths, tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    shutil.copy(tiny_paths["decoder"], path)
    monkeypatch.setattr(ox, "import_onnxruntime", lambda: pytest.fail("a session was opened"))
    with pytest.raises(ModelError, match="is a SAM / MobileSAM decoder, not an encoder"):
        SamEncoder(path)


def test_entry_bytes_per_family():
    sizes = detect.entry_bytes()
    assert sizes["sam"] == 2 * 256 * 64 * 64 + 1024
    assert sizes["sam2"] == 2 * (256 * 64 * 64 + 32 * 256 * 256 + 64 * 128 * 128) + 1024  # about 8 MiB


@pytest.mark.skipif("sam2" not in family_params(), reason="no SAM 2.1 fixtures")
def test_mismatched_pair_names_both_files(tiny_paths, tmp_path):
    from test_segmenter import raster

    from core.raster.raster_source import RasterSource
    from core.segment.embedding_cache import EmbeddingCache
    from core.segment.segmenter import RasterSegmenter

    sam2_enc, sam_dec = FAMILY_FILES["sam2"]["encoder"][0], tiny_paths["decoder"]
    with pytest.raises(ModelError) as err:
        detect.check_pair(sam2_enc, sam_dec)
    msg = str(err.value)
    assert f"the encoder '{sam2_enc}' is a SAM 2 / 2.1 model" in msg
    assert f"the decoder '{sam_dec}' is a SAM / MobileSAM model" in msg and "cannot work together" in msg
    seg = RasterSegmenter(RasterSource.open(raster(tmp_path / "r.tif", 300, 200)), sam2_enc, sam_dec,
                          EmbeddingCache(str(tmp_path / "cache")))
    with pytest.raises(ModelError) as err:
        seg.prepare()  # what the GUI runs first: the decoder is checked against the encoder
    assert str(err.value) == msg
    bundle = SamEncoder(sam2_enc).encode(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=rf"encoded by a SAM 2 / 2.1 encoder, but the decoder '.*{sam_dec.name}' "
                                         "is a SAM / MobileSAM model"):
        SamDecoder(sam_dec).predict(bundle, [[10, 10]], [1])


@pytest.mark.parametrize(("h", "w"), [(1024, 1024), (300, 400), (1200, 800), (100, 90), (1, 1)])
def test_banded_upscale_equals_the_dense_product(h, w):
    from core.families.transforms import BandedUpscale, bicubic_matrix

    low = np.random.default_rng(h * w).normal(0, 5, (3, 256, 256)).astype(np.float32)
    rows, cols = bicubic_matrix(256, h), bicubic_matrix(256, w)
    got = BandedUpscale(rows.astype(np.float32), cols.astype(np.float32))(low)
    assert got.shape == (3, h, w)
    np.testing.assert_allclose(got, rows @ low.astype(np.float64) @ cols.T, atol=2e-5)
