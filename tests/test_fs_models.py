"""Model files on a read-only folder or a full disk: the plugin's messages (core/fs_checks), never raw
OSError text, and nothing left behind.

Downloads (core/models/model_download.py), the checksum cache and discovery
(core/models/model_manager.py), checkpoint exports (core/models/model_export.py) and the int8
encoder (core/families/quantize.py). Permission bits apply in a child without root's DAC override,
a full disk is a real private tmpfs (see ``fs_cases``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fs_cases import permissions_apply, run_script, small_disk

from core.families import quantize

ODD = "modèles partagés"  # paths with spaces and non-ASCII characters
needs_onnx = pytest.mark.skipif(quantize.unavailable_reason() is not None,
                                reason="onnxruntime.quantization needs the onnx package (requirements-dev.txt)")

DOWNLOAD = """
import hashlib
from qgis.PyQt.QtCore import QEventLoop, QTimer
from hf_server import HubServer
from core.models.model_download import ModelDownload

def download(dest, size, no_length=False):
    data = os.urandom(size)
    srv = HubServer({"model.bin": data})
    if no_length:
        srv.no_length.add("model.bin")
    dl = ModelDownload(srv.cdn_url("model.bin"), dest, hashlib.sha256(data).hexdigest())
    got, loop = [], QEventLoop()
    dl.finished.connect(lambda ok, message: (got.append([ok, message]), loop.quit()))
    QTimer.singleShot(60000, loop.quit)
    try:
        dl.start()
    except Exception as exc:
        got.append(["raised", type(exc).__name__ + ": " + str(exc)])
    if not got:
        loop.exec()
    srv.close()
    return {"got": got, "requests": len(srv.requests), "sent": srv.sent}

def listing(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)
"""


def _read_only(folder: Path):
    folder.chmod(0o555)


def test_download_into_a_read_only_models_folder(tmp_path):
    """Before: a raw PermissionError out of start() for the folder to create, and out of the network
    slot (no finished signal) for the .part file in an existing read-only folder."""
    ro = tmp_path / ODD
    ro.mkdir()
    prefix = permissions_apply()
    _read_only(ro)
    try:
        result = run_script(DOWNLOAD + f"""
ro = {str(ro)!r}
print(json.dumps({{"existing": download(os.path.join(ro, "sam.bin"), 300000),
                   "new": download(os.path.join(ro, "models", "sam.bin"), 300000),
                   "files": listing(ro)}}))
""", tmp_path, prefix, qgis=True)
    finally:
        ro.chmod(0o755)
    assert result["existing"]["got"] == [[False, f"cannot write the models folder '{ro}': permission denied; "
                                                 "choose a folder you can write to"]]
    assert result["new"]["got"] == [[False, f"cannot create the models folder '{ro / 'models'}': permission "
                                            "denied; choose a folder you can write to"]]
    assert result["existing"]["requests"] == result["new"]["requests"] == 0  # refused before any download
    assert result["files"] == []


def test_download_onto_a_full_disk(tmp_path):
    """A real 512 KiB disk: a download whose size the server tells is refused before any byte is
    written; one it does not tell fails at the write. Before: a raw OSError in the network slot."""
    disk = tmp_path / "petit disque"
    disk.mkdir()
    result = run_script(DOWNLOAD + f"""
disk = {str(disk)!r}
told = download(os.path.join(disk, "told.bin"), 2 * 2**20)
untold = download(os.path.join(disk, "untold.bin"), 2 * 2**20, no_length=True)
print(json.dumps({{"told": told, "untold": untold, "files": listing(disk)}}))
""", tmp_path, small_disk(disk), qgis=True)
    ((ok, message),) = result["told"]["got"]
    assert not ok and message.startswith(f"cannot write the model file '{disk / 'told.bin'}': the disk is full; it "
                                         "needs 2.0 MiB and ")
    assert message.endswith(" free: free some space, or choose a models folder on another disk")
    assert result["untold"]["got"] == [[False, f"cannot write the model file '{disk / 'untold.bin'}': the disk is "
                                               "full; free some space, or choose a folder on another disk"]]
    assert result["files"] == []  # no .part left


def test_checksum_cache_and_model_files_that_cannot_be_written_or_read(tmp_path, tiny_paths):
    """Before: HashCache.save raised PermissionError out of discover(); an unreadable model vanished
    from the list (a raw log line) and an unreadable folder raised."""
    profile, models, hidden = tmp_path / "profil", tmp_path / ODD, tmp_path / "fermé"
    for folder in (profile, models, hidden):
        folder.mkdir()
    for key in ("encoder_preproc", "decoder"):
        shutil.copy(tiny_paths[key], models / tiny_paths[key].name)
    secret = models / "secret.encoder.onnx"
    shutil.copy(tiny_paths["encoder"], secret)
    prefix = permissions_apply()
    _read_only(profile)
    secret.chmod(0o000)
    hidden.chmod(0o000)
    try:
        result = run_script(f"""
        import logging
        from core.models import model_manager as mm
        warnings = []
        handler = logging.Handler()
        handler.emit = lambda record: warnings.append(record.getMessage())
        logging.getLogger("ai_segmentation").addHandler(handler)
        try:
            entries = mm.discover([{str(models)!r}, {str(hidden)!r}], os.path.join({str(profile)!r}, "index.json"))
            got = {{os.path.basename(e.path): [e.ok, e.error] for e in entries}}
        except Exception as exc:
            got = "raised " + type(exc).__name__ + ": " + str(exc)
        print(json.dumps({{"got": got, "warnings": warnings, "profile": os.listdir({str(profile)!r})}}))
        """, tmp_path, prefix)
    finally:
        profile.chmod(0o755)
        secret.chmod(0o644)
        hidden.chmod(0o755)
    got = result["got"]
    assert isinstance(got, dict), got
    assert got["tiny.encoder.preproc.onnx"] == [True, None] and got["tiny.decoder.onnx"] == [True, None]
    assert got["secret.encoder.onnx"] == [False, f"cannot read the model file '{secret}': permission denied; give "
                                                 "yourself read access to it, or copy it to a folder of yours"]
    cache = profile / "index.json"
    assert f"cannot write the model checksum cache '{cache}': permission denied; make its folder writable (until " \
           "then every model file is checked again each time)" in result["warnings"]
    assert f"cannot read the models folder '{hidden}': permission denied; give yourself read access to it, or " \
           "copy it to a folder of yours" in result["warnings"]
    assert result["profile"] == []  # no temporary file left


def test_export_into_a_read_only_models_folder(tmp_path):
    """Before: a raw PermissionError from the staging folder (mkdtemp)."""
    ro = tmp_path / ODD
    ro.mkdir()
    prefix = permissions_apply()
    _read_only(ro)
    try:
        result = run_script(f"""
        import sys
        from core.errors import ModelError
        from core.models.model_export import run_export
        try:
            run_export(sys.executable, "/nowhere/sam_vit_b_01ec64.pth", "vit_b", {str(ro)!r})
            got = "ok"
        except ModelError as exc:
            got = str(exc)
        except Exception as exc:
            got = "raw " + type(exc).__name__ + ": " + str(exc)
        print(json.dumps({{"got": got, "files": os.listdir({str(ro)!r})}}))
        """, tmp_path, prefix)
    finally:
        ro.chmod(0o755)
    assert result["got"] == f"cannot write the models folder '{ro}': permission denied; choose a folder you can " \
                            "write to"
    assert result["files"] == []


@needs_onnx
def test_int8_encoder_in_a_read_only_folder(tmp_path, tiny_paths):
    """Before: "building the int8 encoder ... failed: PermissionError: [Errno 13] ..." after the work."""
    ro = tmp_path / ODD
    ro.mkdir()
    src = ro / "tiny.encoder.preproc.onnx"
    shutil.copy(tiny_paths["encoder_preproc"], src)
    prefix = permissions_apply()
    _read_only(ro)
    try:
        result = run_script(f"""
        from core.errors import ModelError
        from core.families.quantize import build_int8_encoder
        def attempt(*args):
            try:
                build_int8_encoder(*args)
                return "ok"
            except ModelError as exc:
                return str(exc)
        print(json.dumps({{"beside": attempt({str(src)!r}),
                           "elsewhere": attempt({str(src)!r}, {str(tmp_path / "t.int8.onnx")!r}),
                           "files": sorted(os.listdir({str(ro)!r}))}}))
        """, tmp_path, prefix)
    finally:
        ro.chmod(0o755)
    out = ro / "tiny.encoder.preproc.int8.onnx"
    assert result["beside"] == f"cannot write the int8 encoder file '{out}': permission denied; choose a folder " \
                               "you can write to"
    # onnxruntime writes "<encoder>-inferred.onnx" beside its source: before, a raw FileNotFoundError for it
    assert result["elsewhere"] == f"cannot write the folder of the fp32 encoder '{ro}': permission denied; " \
                                  "onnxruntime's quantisation writes a temporary copy beside the encoder: copy " \
                                  "the encoder to a folder you can write to"
    assert result["files"] == [src.name] and not (tmp_path / "t.int8.onnx").exists()


@needs_onnx
@pytest.mark.parametrize("size, free", [("512k", "512 KiB"), ("2m", None)])
def test_int8_encoder_on_a_full_disk(tmp_path, tiny_paths, size, free):
    """512 KiB: refused before quantising; 2 MiB: passes the check, then the 3 MB file fills the disk.
    Before: "building the int8 encoder ... failed: OSError: ..." (or a protobuf error)."""
    disk = tmp_path / "petit disque"
    disk.mkdir()
    out = disk / "tiny.int8.onnx"
    result = run_script(f"""
    from core.errors import ModelError
    from core.families.quantize import build_int8_encoder
    try:
        build_int8_encoder({str(tiny_paths["encoder_preproc"])!r}, {str(out)!r})
        got = "ok"
    except ModelError as exc:
        got = str(exc)
    print(json.dumps({{"got": got, "files": os.listdir({str(disk)!r})}}))
    """, tmp_path, small_disk(disk, size))
    full = f" ({free} free)" if free else ""
    assert result["got"] == f"cannot write the int8 encoder file '{out}': the disk is full{full}; free some space, " \
                            "or choose a folder on another disk"
    assert result["files"] == []
