"""The engine's signature check, discovery with a checksum cache, the best pair, samexporter export commands."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from core.errors import ModelError
from core.models import catalogue
from core.models import model_export as mx
from core.models import model_manager as mm


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _msg(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def identity_onnx() -> bytes:
    """A valid ONNX model (y = Identity(x), float[3]) that is no SAM model: protobuf written by hand."""
    tensor = _msg(1, _int(1, 1) + _msg(2, _msg(1, _int(1, 3))))  # TypeProto.tensor_type float [3]
    node = _msg(1, b"x") + _msg(2, b"y") + _msg(4, b"Identity")
    graph = _msg(1, node) + _msg(2, b"g") + _msg(11, _msg(1, b"x") + _msg(2, tensor))
    graph += _msg(12, _msg(1, b"y") + _msg(2, tensor))
    return _int(1, 7) + _msg(8, _int(2, 13)) + _msg(7, graph)


@pytest.fixture
def models(tmp_path, tiny_paths) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for path in tiny_paths.values():
        shutil.copy(path, folder / path.name)
    return folder


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_checkpoints_come_from_the_catalogue_with_their_checksums():
    ckpts = catalogue.shipped().checkpoints
    assert list(ckpts) == ["vit_b", "vit_l", "vit_h", "mobile"]
    for c in ckpts.values():
        assert c.url.startswith("https://") and re.fullmatch(r"[0-9a-f]{64}", c.sha256)
    assert ckpts["vit_b"].url.endswith("/segment_anything/sam_vit_b_01ec64.pth")
    assert ckpts["vit_b"].sha256 == "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"
    shipped = Path(mm.__file__).read_text() + Path(mx.__file__).read_text()
    assert not re.search(r"[0-9a-f]{64}", shipped)  # checksums are data (issue #11), not code


@pytest.mark.parametrize(("name", "key"), [
    ("sam_vit_b_01ec64.pth", "vit_b"), ("sam_vit_h_4b8939.pth", "vit_h"), ("vit_l.encoder.onnx", "vit_l"),
    ("mobile_sam.pt", "mobile"), ("tiny.encoder.onnx", None), ("vitality.onnx", None),
])
def test_guess_model_type(name, key):
    assert mm.guess_model_type(name) == key


def test_precision_from_name():
    assert mm.precision_of("vit_b.encoder.preproc.int8.onnx") == "int8"
    assert mm.precision_of("sam_vit_b_encoder.quant.onnx") == "int8"
    assert mm.precision_of("vit_b.encoder.preproc.onnx") == "fp32"


def test_discovers_and_checks_the_tiny_models(models, tmp_path):
    found = mm.discover([models, tmp_path / "absent"], tmp_path / "cache.json")
    by_name = {Path(e.path).name: e for e in found}
    assert sorted(by_name) == ["tiny.decoder.onnx", "tiny.encoder.onnx", "tiny.encoder.preproc.onnx"]
    assert all(e.ok and e.checked and e.error is None and not e.verified for e in found)
    assert {e.family for e in found} == {"sam"}
    assert [by_name[n].role for n in sorted(by_name)] == ["decoder", "encoder", "encoder"]
    for name, e in by_name.items():
        assert e.sha256 == _sha(models / name) and e.size == (models / name).stat().st_size
    assert mm.best_pair(found) == (str(models / "tiny.encoder.onnx"), str(models / "tiny.decoder.onnx"))
    assert "fp32 encoder (SAM / MobileSAM), no published checksum" in mm.describe(by_name["tiny.encoder.onnx"])
    known = {_sha(models / "tiny.decoder.onnx"): "test"}
    verified = {Path(e.path).name: e.verified for e in mm.discover([models], known=known)}
    assert verified == {"tiny.decoder.onnx": True, "tiny.encoder.onnx": False, "tiny.encoder.preproc.onnx": False}


def test_probe_says_family_and_role(tiny_paths):
    assert mm.probe(tiny_paths["encoder_preproc"]) == ("sam", "encoder")
    assert mm.probe(tiny_paths["encoder"]) == ("sam", "encoder")
    assert mm.probe(tiny_paths["decoder"]) == ("sam", "decoder")
    assert mm.RUNNABLE_FAMILIES == ("sam", "sam2", "efficientsam")


def test_quick_look_opens_nothing_and_reuses_the_cache(models, tmp_path):
    cache = tmp_path / "cache.json"
    quick = {Path(e.path).name: e for e in mm.discover([models], cache, check=False)}
    assert all(not e.checked and e.sha256 is None and e.family is None for e in quick.values())
    assert quick["tiny.decoder.onnx"].role == "decoder" and quick["tiny.encoder.onnx"].role == "encoder"
    assert not cache.exists()  # a quick look writes nothing
    assert "not checked yet" in mm.describe(quick["tiny.encoder.onnx"])
    mm.discover([models], cache)
    again = mm.discover([models], cache, check=False)
    assert all(e.checked and e.family == "sam" for e in again)


def test_bad_files_get_specific_messages(models, tmp_path, tiny_paths):
    enc = tiny_paths["encoder_preproc"].read_bytes()
    (models / "garbage.encoder.onnx").write_bytes(os.urandom(4096))
    (models / "truncated.encoder.onnx").write_bytes(enc[: len(enc) // 2])
    (models / "empty.decoder.onnx").write_bytes(b"")
    (models / "identity.encoder.onnx").write_bytes(identity_onnx())
    shutil.copy(tiny_paths["decoder"], models / "misnamed.encoder.onnx")  # a decoder, named as encoder
    errors = {Path(e.path).name: e.error for e in mm.discover([models])}
    assert "could not be loaded" in errors["garbage.encoder.onnx"]
    assert f"truncated ({len(enc) // 2} bytes)" in errors["truncated.encoder.onnx"]
    assert "holds only 0 bytes" in errors["empty.decoder.onnx"]
    assert "is not a model this plugin knows" in errors["identity.encoder.onnx"]
    assert "found x (rank 1)" in errors["identity.encoder.onnx"]
    assert errors["misnamed.encoder.onnx"] is None  # recognised as the decoder it is
    entries = mm.discover([models])
    decoders = {Path(e.path).name for e in entries if e.role == "decoder"}
    assert decoders == {"tiny.decoder.onnx", "misnamed.encoder.onnx"}
    assert "unusable" in mm.describe(next(e for e in entries if e.path.endswith("garbage.encoder.onnx")))


def test_missing_file_message(tmp_path):
    with pytest.raises(ModelError, match=r"gone\.encoder\.onnx.: it does not exist"):
        mm.probe(tmp_path / "gone.encoder.onnx")


def test_cache_is_reused_for_unchanged_files_and_refreshed_for_changed_ones(models, tmp_path):
    cache = tmp_path / "cache.json"
    mm.discover([models], cache)
    data = json.loads(cache.read_text())
    key = str(models / "tiny.decoder.onnx")
    assert data["files"][key]["role"] == "decoder" and data["files"][key]["sha256"] == _sha(key)
    data["files"][key]["sha256"] = "0" * 64  # a cache hit returns it without re-hashing
    cache.write_text(json.dumps(data))
    assert next(e for e in mm.discover([models], cache) if e.path == key).sha256 == "0" * 64
    st = os.stat(key)
    os.utime(key, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "modified": hashed and validated again
    assert next(e for e in mm.discover([models], cache) if e.path == key).sha256 == _sha(key)


def test_unreadable_cache_is_rebuilt(models, tmp_path):
    cache = tmp_path / "cache.json"
    cache.write_text("{not json")
    assert len(mm.discover([models], cache)) == 3
    assert json.loads(cache.read_text())["version"] == mm.CACHE_VERSION


def test_hidden_temporary_files_and_other_files_are_ignored(models):
    (models / ".vit_b.encoder.123.tmp.onnx").write_bytes(b"partial")
    (models / "notes.txt").write_text("x")
    (models / "sam_vit_b_01ec64.pth.part").write_bytes(b"partial")
    (models / ".download-x").mkdir()
    (models / ".download-x" / "staged.encoder.onnx").write_bytes(b"partial")
    names = [Path(p).name for p in mm.model_files([models])]
    assert names == ["tiny.decoder.onnx", "tiny.encoder.onnx", "tiny.encoder.preproc.onnx"]


def test_checkpoints_are_listed_with_their_type(models):
    (models / "sam_vit_b_01ec64.pth").write_bytes(b"not the real checkpoint")
    ckpt = next(e for e in mm.discover([models]) if e.role == "checkpoint")
    assert ckpt.model_type == "vit_b" and ckpt.ok and not ckpt.verified  # wrong bytes: not verified
    assert "checksum differs from the official checkpoint" in mm.describe(ckpt)


def test_best_pair_prefers_int8_of_the_same_group_and_family(tmp_path):
    def entry(name, role, error=None, family="sam"):
        return mm.ModelEntry(str(tmp_path / name), 1, None, role, mm.precision_of(name),
                             mm.guess_model_type(name), family, error=error)

    entries = [
        entry("vit_h.encoder.preproc.onnx", "encoder"), entry("vit_b.encoder.preproc.onnx", "encoder"),
        entry("vit_b.encoder.preproc.int8.onnx", "encoder"), entry("vit_b.decoder.onnx", "decoder"),
        entry("vit_l.encoder.preproc.int8.onnx", "encoder", error="broken"),
    ]
    assert mm.best_pair(entries) == (str(tmp_path / "vit_b.encoder.preproc.int8.onnx"),
                                     str(tmp_path / "vit_b.decoder.onnx"))
    assert mm.best_pair(entries, prefer_int8=False)[0] == str(tmp_path / "vit_b.encoder.preproc.onnx")
    assert mm.best_pair(entries[:1]) is None
    assert mm.fp32_encoder(entries).path.endswith("vit_h.encoder.preproc.onnx")
    assert mm.fp32_encoder(entries, str(tmp_path / "vit_b.encoder.preproc.onnx")).path.endswith(
        "vit_b.encoder.preproc.onnx")
    other = [entry("a.encoder.onnx", "encoder", family="sam2"), entry("b.decoder.onnx", "decoder")]
    assert mm.best_pair(other) is None  # one encoder and one decoder, but of two families


def test_export_commands_are_samexporters_module_entry_points(tmp_path):
    ckpt = "/m/sam_vit_b_01ec64.pth"
    enc, dec = mx.export_commands("/py/python", ckpt, "vit_b", tmp_path)
    assert enc == ["/py/python", "-m", "samexporter.export_encoder", "--checkpoint", ckpt,
                   "--output", str(tmp_path / "vit_b.encoder.preproc.onnx"), "--model-type", "vit_b",
                   "--use-preprocess"]
    assert dec == ["/py/python", "-m", "samexporter.export_decoder", "--checkpoint", ckpt,
                   "--output", str(tmp_path / "vit_b.decoder.onnx"), "--model-type", "vit_b"]
    with pytest.raises(ModelError, match="unknown SAM model type 'vit_x'"):
        mx.export_commands("python", "x.pth", "vit_x", tmp_path)
    text = mx.export_instructions("/m/sam_vit_b_01ec64.pth", "vit_b", tmp_path)
    assert "python -m samexporter.export_encoder --checkpoint /m/sam_vit_b_01ec64.pth" in text
    assert "pip install --no-deps samexporter==0.5.0" in text and "export-encoder" not in text


_FAKE_EXPORTER = '''
import argparse, shutil, sys
p = argparse.ArgumentParser()
p.add_argument("--checkpoint"); p.add_argument("--output"); p.add_argument("--model-type")
p.add_argument("--use-preprocess", action="store_true")
a = p.parse_args()
print("exporting", a.model_type, "preprocess" if a.use_preprocess else "")
if a.checkpoint.endswith("bad.pth"):
    sys.exit("checkpoint is corrupt")
shutil.copy(SRC, a.output)
'''


def _fake_samexporter(root: Path, tiny_paths) -> None:
    pkg = root / "samexporter"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for module, src in (("export_encoder", "encoder_preproc"), ("export_decoder", "decoder")):
        (pkg / f"{module}.py").write_text(f"SRC = {str(tiny_paths[src])!r}\n" + _FAKE_EXPORTER)


def test_run_export_places_validated_models(tmp_path, tiny_paths, monkeypatch):
    """samexporter itself needs torch; a stand-in with its command line writes the tiny models."""
    _fake_samexporter(tmp_path / "site", tiny_paths)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    out, lines = tmp_path / "models", []
    moved = mx.run_export(sys.executable, tmp_path / "sam_vit_b_01ec64.pth", "vit_b", out, lines.append)
    assert [p.name for p in moved] == ["vit_b.decoder.onnx", "vit_b.encoder.preproc.onnx"]
    assert sorted(os.listdir(out)) == ["vit_b.decoder.onnx", "vit_b.encoder.preproc.onnx"]  # no staging left
    assert "exporting vit_b preprocess" in lines and any("samexporter.export_decoder" in s for s in lines)
    entries = mm.discover([out])
    assert all(e.ok for e in entries) and mm.best_pair(entries) == (str(out / "vit_b.encoder.preproc.onnx"),
                                                                      str(out / "vit_b.decoder.onnx"))


def test_failed_export_leaves_nothing(tmp_path, tiny_paths, monkeypatch):
    _fake_samexporter(tmp_path / "site", tiny_paths)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    out = tmp_path / "models"
    with pytest.raises(ModelError, match=r"samexporter failed \(exit code 1\): checkpoint is corrupt"):
        mx.run_export(sys.executable, tmp_path / "bad.pth", "vit_b", out)
    assert os.listdir(out) == []
