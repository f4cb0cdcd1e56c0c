"""The model catalogue data file, the user's record, and the pairs the plugin may use."""

from __future__ import annotations

import copy
import os
import re
import shutil

import pytest
from catalogue_cases import install_tiny, sam_catalogue, sha

from core.errors import ModelError
from core.models import catalogue
from core.models import model_manager as mm
from core.models.model_pairs import available_pairs, best, catalogue_rows, installed_files
from core.models.model_record import RecordedFile, UserRecord, check_custom, profile_paths

SHIPPED = catalogue.load(catalogue.DATA_FILE)


def test_shipped_catalogue_entries_are_pinned_and_checked():
    cat = catalogue.shipped()
    assert [m.id for m in cat.models] == ["efficientsam_ti", "sam2_hiera_tiny", "sam2_hiera_small",
                                          "sam2_hiera_base_plus"]
    for m in cat.models:
        assert re.fullmatch(r"[0-9a-f]{40}", m.revision) and m.licence == "Apache-2.0" and m.sources
        assert sorted(f.role for f in m.files) == ["decoder", "encoder"]
        for f in m.files:
            assert re.fullmatch(rf"https://huggingface\.co/(spaces/)?[\w.-]+/[\w.-]+/resolve/{m.revision}/"
                                rf"{re.escape(f.name)}", f.url)
            assert (f.verify == "pinned") == (f.sha256 is not None)
    ti = cat.model("efficientsam_ti")
    assert ti.family == "efficientsam" and ti.file("encoder").verify == "pinned"
    assert ti.file("encoder").sha256 == "84ed466ffcc5c1f8d08409bc34a23bb364ab2c15e402cb12d4335a42be0e0951"
    assert {m.family for m in cat.models} == {"efficientsam", "sam2"}
    # fastest encoder first, from the figures measured on 2 cores
    assert [m.id for m in cat.recommended()] == ["efficientsam_ti", "sam2_hiera_tiny", "sam2_hiera_small",
                                                 "sam2_hiera_base_plus"]
    assert cat.known_sha256()[ti.file("decoder").sha256] == "EfficientSAM-Ti"


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(format=2), "unknown format 2"),
    (lambda d: d["models"][0].update(family="sam3"), "family must be one of sam, sam2, efficientsam"),
    (lambda d: d["models"][0]["files"][1].update(url=d["models"][0]["files"][1]["url"].replace(
        "d8dbb1eee73bfb3392aa6f6e8944aeb13f3f4036", "1" * 40)), "both files must come from the same revision"),
    (lambda d: d["models"][0]["files"][0].update(url=d["models"][0]["files"][0]["url"].replace(
        "d8dbb1eee73bfb3392aa6f6e8944aeb13f3f4036", "main")), "must be pinned to a full 40-digit commit"),
    (lambda d: d["models"][0]["files"][0].update(sha256=None), "a pinned file needs a hex SHA256"),
    (lambda d: d["models"][1]["files"][0].update(sha256="ab" * 32), "must not list one"),
    (lambda d: d["models"][0]["files"].pop(), "exactly one encoder and one decoder"),
    (lambda d: d["models"][0]["files"][0].update(name="../x.onnx"), "a plain file name"),
    (lambda d: d["models"][0].update(sources=[]), "'sources' must list"),
    (lambda d: d["models"][1].update(id="efficientsam_ti"), "model ids must differ"),
    (lambda d: d["checkpoints"][0].update(url="http://x/y.pth"), "checkpoint 'vit_b': the URL must be https"),
])
def test_a_damaged_catalogue_is_refused_naming_the_fault(change, message):
    data = copy.deepcopy(SHIPPED)
    change(data)
    with pytest.raises(ModelError, match=re.escape(message)):
        catalogue.parse(data, "models.json")


def test_unreadable_catalogue_file(tmp_path):
    (tmp_path / "c.json").write_text("{oops")
    with pytest.raises(ModelError, match=r"could not be read .* Reinstall the plugin"):
        catalogue.read(tmp_path / "c.json")


def _pairs(models_dir, record, cat, cache=None, check=True):
    extra = installed_files(models_dir, cat) + list(record.files())
    entries = mm.discover([models_dir], cache, extra_files=extra, check=check)
    return available_pairs(models_dir, entries, cat, record)


def test_an_installed_pair_is_offered_and_a_damaged_one_is_not(tiny_paths, tmp_path):
    cat, models, record = sam_catalogue(tiny_paths), tmp_path / "models", UserRecord(tmp_path / "rec.json")
    assert _pairs(models, record, cat) == []  # nothing installed: nothing offered
    folder = install_tiny(tiny_paths, models, record, cat)
    (pair,) = _pairs(models, record, cat)
    assert pair.ok and pair.key == "catalogue:tiny" and pair.family == "sam"
    assert pair.encoder == str(folder / "tiny_encoder.onnx") and best([pair]) == pair
    rows = {r.model.id: r for r in catalogue_rows(cat, [pair])}
    assert rows["tiny"].status == "installed"
    assert [r.model.id for r in rows.values() if r.recommended] == [cat.recommended()[0].id]  # fastest first
    assert rows["efficientsam_ti"].status == "not installed" and rows["efficientsam_ti"].can_download
    assert rows["sam2_hiera_tiny"].can_download and "Licence: Apache-2.0" in rows["sam2_hiera_tiny"].details

    (folder / "tiny_decoder.onnx").unlink()  # a half-written folder
    (pair,) = _pairs(models, record, cat)
    assert not pair.ok and best([pair]) is None
    assert "tiny_decoder.onnx is missing" in pair.problem and "Download it again" in pair.problem

    shutil.copy(tiny_paths["encoder"], folder / "tiny_decoder.onnx")  # another file in its place
    (pair,) = _pairs(models, record, cat)
    assert "tiny_decoder.onnx is a SAM / MobileSAM encoder, not the SAM / MobileSAM decoder" in pair.problem


def test_a_changed_file_or_a_missing_record_is_noticed(tiny_paths, tmp_path):
    cat, models, record = sam_catalogue(tiny_paths, pinned=False), tmp_path / "models", UserRecord(tmp_path / "r")
    folder = install_tiny(tiny_paths, models, record, cat)
    assert _pairs(models, record, cat)[0].ok  # host-checked files: compared with the recorded SHA256
    dec = folder / "tiny_decoder.onnx"
    record.installed[str(dec)] = RecordedFile(str(dec), "f" * 64, "host")
    assert f"changed since it was installed (SHA256 {sha(dec)}, recorded {'f' * 64})" in \
        _pairs(models, record, cat)[0].problem
    del record.installed[str(dec)]
    assert "no recorded checksum" in _pairs(models, record, cat)[0].problem
    quick = _pairs(models, record, cat, check=False)[0]  # the GUI thread's quick look trusts the files
    assert quick.ok


def test_record_round_trip_and_a_damaged_record(tiny_paths, tmp_path):
    path = profile_paths(tmp_path)["record"]
    assert path == tmp_path / "ai_segmentation" / "user_models.json"
    record = UserRecord(path)
    model = check_custom(" Roofs ", tiny_paths["encoder_preproc"], tiny_paths["decoder"], mm.HashCache(None))
    assert (model.name, model.family) == ("Roofs", "sam")
    assert model.encoder.sha256 == sha(tiny_paths["encoder_preproc"])
    record.custom[model.name] = model
    record.record_install([RecordedFile("/m/a.onnx", "a" * 64, "host", "https://x")])
    record.save()
    again = UserRecord(path)
    assert again.custom == record.custom and again.installed == record.installed
    assert again.recorded_sha256("/m/a.onnx") == "a" * 64 and again.known()["a" * 64] == "a.onnx"
    path.write_text("{not json")
    fresh = UserRecord(path)
    assert fresh.custom == {} and path.with_name("user_models.json.bad").read_text() == "{not json"
    with pytest.raises(ModelError, match="no model named 'x'"):
        fresh.remove_custom("x")


def test_adding_a_model_checks_both_files(tiny_paths, tmp_path):
    cache = mm.HashCache(tmp_path / "index.json")
    enc, dec = tiny_paths["encoder_preproc"], tiny_paths["decoder"]
    with pytest.raises(ModelError, match="give the model a name"):
        check_custom("  ", enc, dec, cache)
    with pytest.raises(ModelError, match="is a SAM / MobileSAM decoder, not the encoder"):
        check_custom("swapped", dec, enc, cache)
    with pytest.raises(ModelError, match="does not exist"):
        check_custom("gone", tmp_path / "none.onnx", dec, cache)
    (tmp_path / "model.pth").write_bytes(b"x" * 100)
    with pytest.raises(ModelError, match=r"not an ONNX file.*Export from checkpoint"):
        check_custom("ckpt", tmp_path / "model.pth", dec, cache)
    (tmp_path / "junk.encoder.onnx").write_bytes(os.urandom(2048))
    with pytest.raises(ModelError, match=r"cannot be used as the encoder: .*could not be loaded"):
        check_custom("junk", tmp_path / "junk.encoder.onnx", dec, cache)


def test_custom_pairs_are_listed_and_checked(tiny_paths, tmp_path):
    cat, models = sam_catalogue(tiny_paths), tmp_path / "models"
    own = tmp_path / "own"
    own.mkdir()
    enc, dec = own / "roof.enc.onnx", own / "roof.dec.onnx"  # names that say nothing
    shutil.copy(tiny_paths["encoder"], enc)
    shutil.copy(tiny_paths["decoder"], dec)
    record = UserRecord(tmp_path / "rec.json")
    record.custom["Roofs"] = check_custom("Roofs", enc, dec, mm.HashCache(None))
    (pair,) = _pairs(models, record, cat)
    assert pair.ok and (pair.key, pair.encoder, pair.decoder) == ("custom:Roofs", str(enc), str(dec))
    dec.unlink()
    (pair,) = _pairs(models, record, cat)
    assert not pair.ok and f"{dec} is missing" in pair.problem


def test_loose_files_come_after_installed_models(tiny_paths, tmp_path):
    cat, models, record = sam_catalogue(tiny_paths), tmp_path / "models", UserRecord(tmp_path / "rec.json")
    install_tiny(tiny_paths, models, record, cat)
    shutil.copy(tiny_paths["encoder"], models / "x.encoder.onnx")
    shutil.copy(tiny_paths["decoder"], models / "x.decoder.onnx")
    pairs = _pairs(models, record, cat)
    assert [p.key for p in pairs] == ["catalogue:tiny", "files"]
    assert pairs[1].encoder == str(models / "x.encoder.onnx")
    assert best(pairs).key == "catalogue:tiny"
