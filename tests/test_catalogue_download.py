"""Installing a catalogue model: download both files, check them, move them into place, record them.

The files are the tiny test models, served by a local server that answers like
Hugging Face (302 with X-Linked-Etag / X-Linked-Size, then the CDN).
"""

from __future__ import annotations

import os

import pytest
from catalogue_cases import REV, TINY, sam_catalogue, sha
from hf_server import HubServer
from test_model_manager import identity_onnx

from core.models import model_manager as mm
from core.models.catalogue_download import CatalogueDownload
from core.models.model_install import staging_dir
from core.models.model_pairs import available_pairs, installed_files
from core.models.model_record import UserRecord


@pytest.fixture
def hub(tiny_paths):
    srv = HubServer({f"tiny_{role}.onnx": tiny_paths[key].read_bytes() for role, key in TINY.items()})
    yield srv
    srv.close()


@pytest.fixture
def where(tmp_path):
    return {"models": tmp_path / "models", "record": tmp_path / "profile" / "user_models.json",
            "index": tmp_path / "profile" / "model_index.json"}


def install(qtbot, cat, where, timeout: int = 60000):
    dl = CatalogueDownload(cat.model("tiny"), where["models"], where["record"], where["index"])
    progress = []
    dl.progress.connect(lambda *args: progress.append(args))
    with qtbot.waitSignal(dl.finished, timeout=timeout) as blocker:
        dl.start()
    ok, message = blocker.args
    return ok, message, dl, progress


def offered(cat, where):
    """The usable pairs a fresh look at the models folder finds (the record and cache as saved)."""
    record = UserRecord(where["record"])
    extra = installed_files(where["models"], cat) + list(record.files())
    entries = mm.discover([where["models"]], where["index"], extra_files=extra)
    return [p for p in available_pairs(where["models"], entries, cat, record) if p.ok]


def installed_folder(where):
    return where["models"] / "tiny"


def test_host_checked_pair_is_installed_recorded_and_offered(qgis_app, qtbot, hub, where, tiny_paths):
    cat = sam_catalogue(tiny_paths, hub.base, pinned=False)
    ok, message, dl, progress = install(qtbot, cat, where)
    assert ok, message
    folder = installed_folder(where)
    assert sorted(os.listdir(folder)) == ["tiny_decoder.onnx", "tiny_encoder.onnx"]
    assert os.listdir(where["models"]) == ["tiny"]  # no staging folder, no .part left
    record = UserRecord(where["record"])
    for role, key in TINY.items():
        rec = record.installed[str(folder / f"tiny_{role}.onnx")]
        assert (rec.sha256, rec.checked_by) == (sha(tiny_paths[key]), "host")
        assert rec.url == hub.url(f"tiny_{role}.onnx", REV)
    (pair,) = offered(cat, where)
    assert (pair.key, pair.encoder, pair.decoder) == ("catalogue:tiny", str(folder / "tiny_encoder.onnx"),
                                                      str(folder / "tiny_decoder.onnx"))
    assert dl.pair == pair and "Tiny SAM installed" in message
    quick = mm.discover([], where["index"], extra_files=installed_files(where["models"], cat), check=False)
    assert all(e.checked and e.family == "sam" for e in quick)  # the installer filled the cache
    assert {p[0] for p in progress} == {0, 1} and all(p[1] == 2 for p in progress)


def test_mismatching_host_header_installs_nothing(qgis_app, qtbot, hub, where, tiny_paths):
    cat = sam_catalogue(tiny_paths, hub.base, pinned=False)
    hub.etag["tiny_encoder.onnx"] = "0" * 64
    ok, message, _, _ = install(qtbot, cat, where)
    assert not ok and "Tiny SAM: the download of 'tiny_encoder.onnx' is corrupt" in message
    assert f"the host says it should be {'0' * 64}" in message and "Nothing was installed" in message
    assert not installed_folder(where).exists() and offered(cat, where) == []
    assert os.listdir(staging_dir(where["models"], cat.model("tiny"))) == []  # the bad file was deleted
    assert "/cdn/tiny_decoder.onnx" not in hub.paths()  # it stopped at the first bad file


def test_interrupted_then_resumed(qgis_app, qtbot, hub, where, tiny_paths):
    cat = sam_catalogue(tiny_paths, hub.base)
    hub.cut_after["tiny_decoder.onnx"] = 400_000
    ok, message, _, _ = install(qtbot, cat, where)
    assert not ok and "press Download again to resume" in message
    assert not installed_folder(where).exists() and offered(cat, where) == []
    staging = staging_dir(where["models"], cat.model("tiny"))
    kept = (staging / "tiny_decoder.onnx.part").stat().st_size
    assert 0 < kept <= 400_000 and (staging / "tiny_encoder.onnx").is_file()
    before = len(hub.requests)
    ok, message, _, _ = install(qtbot, cat, where)
    assert ok, message
    resumed = hub.requests[before:]
    assert resumed == [(f"/repo/resolve/{REV}/tiny_decoder.onnx", f"bytes={kept}-"),
                       ("/cdn/tiny_decoder.onnx", f"bytes={kept}-")]  # the checked encoder is not fetched again
    assert (installed_folder(where) / "tiny_decoder.onnx").read_bytes() == tiny_paths["decoder"].read_bytes()
    assert len(offered(cat, where)) == 1 and not staging.exists()


def test_a_file_of_another_family_is_deleted(qgis_app, qtbot, hub, where, tiny_paths, monkeypatch):
    """The catalogue says EfficientSAM; the files are SAM. The engine's check says so: nothing installed."""
    cat = sam_catalogue(tiny_paths, hub.base, family="efficientsam")
    ok, message, _, _ = install(qtbot, cat, where)
    assert not ok
    assert ("tiny_encoder.onnx is a SAM / MobileSAM encoder, but Tiny SAM belongs to the EfficientSAM family" in message
            and "The download was deleted; nothing was installed." in message)
    assert os.listdir(where["models"]) == [] and offered(cat, where) == []
    assert UserRecord(where["record"]).installed == {}


def test_a_family_the_engine_cannot_run_is_not_downloaded(qgis_app, qtbot, hub, where, tiny_paths, monkeypatch):
    """A family this version cannot run (as a newer plugin's records could name) is refused before any byte."""
    monkeypatch.setattr(mm, "RUNNABLE_FAMILIES", ("sam",))
    cat = sam_catalogue(tiny_paths, hub.base, family="sam2")
    ok, message, _, _ = install(qtbot, cat, where)
    assert not ok and "Tiny SAM is a SAM 2 / 2.1 model, which this version of the plugin cannot run" in message
    assert hub.requests == [] and not where["models"].exists()


def test_the_second_file_failing_leaves_the_first_unoffered(qgis_app, qtbot, hub, where, tiny_paths):
    cat = sam_catalogue(tiny_paths, hub.base, pinned=False)
    hub.etag["tiny_decoder.onnx"] = "f" * 64
    ok, message, _, _ = install(qtbot, cat, where)
    assert not ok and "'tiny_decoder.onnx' is corrupt" in message
    assert not installed_folder(where).exists() and offered(cat, where) == []
    staging = staging_dir(where["models"], cat.model("tiny"))
    assert sorted(os.listdir(staging)) == ["tiny_encoder.onnx", "verified.json"]  # hidden, not installed
    assert mm.model_files([where["models"]]) == []
    del hub.etag["tiny_decoder.onnx"]
    ok, _, _, _ = install(qtbot, cat, where)
    assert ok and len(offered(cat, where)) == 1


def test_an_unknown_onnx_graph_is_deleted(qgis_app, qtbot, hub, where, tiny_paths, tmp_path):
    fake = tmp_path / "identity.onnx"
    fake.write_bytes(identity_onnx())
    hub.files["tiny_encoder.onnx"] = fake.read_bytes()
    cat = sam_catalogue(tiny_paths, hub.base, served={"encoder": fake})  # its checksum matches: the graph does not
    ok, message, _, _ = install(qtbot, cat, where)
    assert not ok and "tiny_encoder.onnx, downloaded for Tiny SAM, is not a model the plugin can run" in message
    assert "is not a model this plugin knows" in message and "nothing was installed" in message
    assert os.listdir(where["models"]) == []


def test_a_file_in_the_wrong_role_is_deleted(qgis_app, qtbot, hub, where, tiny_paths):
    hub.files["tiny_encoder.onnx"] = tiny_paths["decoder"].read_bytes()
    cat = sam_catalogue(tiny_paths, hub.base, served={"encoder": tiny_paths["decoder"]})
    ok, message, _, _ = install(qtbot, cat, where)
    assert not ok
    assert "tiny_encoder.onnx is a SAM / MobileSAM decoder, but the catalogue lists it as Tiny SAM's encoder" in message
    assert os.listdir(where["models"]) == []


def test_cancel_deletes_what_was_downloaded(qgis_app, qtbot, hub, where, tiny_paths):
    cat = sam_catalogue(tiny_paths, hub.base)
    hub.delay = 0.02
    dl = CatalogueDownload(cat.model("tiny"), where["models"], where["record"], where["index"])
    dl.progress.connect(lambda i, *_: dl.cancel() if i == 1 else None)  # during the second file
    with qtbot.waitSignal(dl.finished, timeout=60000) as blocker:
        dl.start()
    assert blocker.args == [False, "download of Tiny SAM cancelled; its files were deleted"]
    assert os.listdir(where["models"]) == []


def test_a_move_that_fails_keeps_the_installed_copy_and_the_checked_download(qgis_app, qtbot, hub, where, tiny_paths):
    """The previous copy cannot be set aside (its parking place is a file): the plugin's message,
    the installed copy untouched, the checked download kept for another try."""
    cat = sam_catalogue(tiny_paths, hub.base, pinned=False)
    assert install(qtbot, cat, where)[0]
    folder = installed_folder(where)
    (where["models"] / ".old-tiny").write_text("in the way")
    ok, message, _, _ = install(qtbot, cat, where)
    assert not ok
    assert message.startswith(f"cannot write the models folder '{where['models']}': ")
    assert message.endswith("make it writable, or choose another models folder, then press Download again "
                            "(Tiny SAM is downloaded and checked)")
    assert sorted(os.listdir(folder)) == ["tiny_decoder.onnx", "tiny_encoder.onnx"]
    assert sorted(os.listdir(staging_dir(where["models"], cat.model("tiny")))) == [
        "tiny_decoder.onnx", "tiny_encoder.onnx", "verified.json"]
    (where["models"] / ".old-tiny").unlink()
    ok, message, _, _ = install(qtbot, cat, where)  # the next try installs
    assert ok, message
    assert sorted(os.listdir(where["models"])) == ["tiny"]


def test_a_record_that_cannot_be_written_says_so(tmp_path):
    blocker = tmp_path / "profile"
    blocker.write_text("a file where the profile folder should be")
    record = UserRecord(blocker / "user_models.json")
    with pytest.raises(mm.ModelError, match=r"^cannot write the list of installed models '.*user_models\.json': "
                                            r".*; make the QGIS profile folder writable, or free some space"):
        record.save()
    assert blocker.read_text() == "a file where the profile folder should be"
