"""Downloads through QGIS's network stack from a local server (Range, redirects, host checksums)."""

from __future__ import annotations

import hashlib
import os

import pytest
from hf_server import HubServer

from core.models.model_download import (
    ChecksumError,
    ModelDownload,
    content_range_start,
    finish_download,
    host_sha256,
    part_path,
)

DATA = os.urandom(3 * 2**20 + 12345)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def server():
    servers = []

    def make(files=None) -> HubServer:
        servers.append(HubServer(files or {"model.bin": DATA}))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def run(qtbot, url: str, dest, sha256, on_progress=None, timeout: int = 30000):
    dl = ModelDownload(url, dest, sha256)
    progress = []
    dl.progress.connect(lambda got, total: progress.append((got, total)))
    if on_progress:
        dl.progress.connect(lambda *_: on_progress(dl))
    with qtbot.waitSignal(dl.finished, timeout=timeout) as blocker:
        dl.start()
    ok, message = blocker.args
    return ok, message, progress, dl


def test_download_checked_against_the_published_sha256(qgis_app, qtbot, server, tmp_path):
    srv = server()
    dest = tmp_path / "models" / "sam.pth"
    ok, message, progress, dl = run(qtbot, srv.cdn_url("model.bin"), dest, SHA)
    assert ok and message == str(dest) and (dl.sha256, dl.checked_by) == (SHA, "pinned")
    assert dest.read_bytes() == DATA and not part_path(dest).exists()
    assert progress[-1] == (len(DATA), len(DATA))
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)
    assert srv.requests == [("/cdn/model.bin", None)]


def test_without_any_checksum_nothing_is_kept(qgis_app, qtbot, server, tmp_path):
    ok, message, _, dl = run(qtbot, server().cdn_url("model.bin"), tmp_path / "sam.pth", None)
    assert not ok and dl.sha256 is None
    assert "the host did not say the SHA256 of 'sam.pth'" in message and "Nothing unverified" in message
    assert os.listdir(tmp_path) == []


def test_host_served_sha256_through_the_redirect(qgis_app, qtbot, server, tmp_path):
    srv = server()
    dest = tmp_path / "sam.bin"
    ok, _, progress, dl = run(qtbot, srv.url("model.bin"), dest, None)
    assert ok and (dl.sha256, dl.checked_by) == (SHA, "host") and dest.read_bytes() == DATA
    assert srv.paths() == [f"/repo/resolve/{'0' * 40}/model.bin", "/cdn/model.bin"]
    assert progress[-1] == (len(DATA), len(DATA))  # the redirect's own body is not counted


def test_mismatching_host_sha256_deletes_the_file(qgis_app, qtbot, server, tmp_path):
    srv = server()
    srv.etag["model.bin"] = "0" * 64
    ok, message, _, _ = run(qtbot, srv.url("model.bin"), tmp_path / "sam.bin", None)
    assert not ok
    assert f"its SHA256 is {SHA}, but the host says it should be {'0' * 64}. The file was deleted" in message
    assert os.listdir(tmp_path) == []


def test_size_differing_from_the_hosts_deletes_the_file(qgis_app, qtbot, server, tmp_path):
    srv = server()
    srv.size["model.bin"] = len(DATA) + 1
    ok, message, _, _ = run(qtbot, srv.url("model.bin"), tmp_path / "sam.bin", None)
    assert not ok and f"is {len(DATA)} bytes, but the host says {len(DATA) + 1}" in message
    assert os.listdir(tmp_path) == []


def test_host_without_checksum_header_is_refused(qgis_app, qtbot, server, tmp_path):
    srv = server()
    srv.no_etag.add("model.bin")
    ok, message, _, _ = run(qtbot, srv.url("model.bin"), tmp_path / "sam.bin", None)
    assert not ok and "the host did not say the SHA256 of 'sam.bin'" in message
    assert os.listdir(tmp_path) == []
    ok, _, _, dl = run(qtbot, srv.url("model.bin"), tmp_path / "sam.bin", SHA)  # a published one suffices
    assert ok and dl.checked_by == "pinned"


def test_a_host_serving_another_file_than_the_catalogue_lists_is_stopped_early(qgis_app, qtbot, server, tmp_path):
    srv = server()
    ok, message, _, _ = run(qtbot, srv.url("model.bin"), tmp_path / "sam.bin", "1" * 64)
    assert not ok and f"the host now serves a different 'sam.bin' (SHA256 {SHA})" in message
    assert srv.paths() == [f"/repo/resolve/{'0' * 40}/model.bin"] and srv.sent == 0  # never fetched
    assert os.listdir(tmp_path) == []


def test_checksum_mismatch_deletes_the_file(qgis_app, qtbot, server, tmp_path):
    ok, message, _, _ = run(qtbot, server().cdn_url("model.bin"), tmp_path / "sam.pth", "0" * 64)
    assert not ok
    assert f"its SHA256 is {SHA}, but the model catalogue lists {'0' * 64}. The file was deleted" in message
    assert os.listdir(tmp_path) == []


def test_cancelled_download_leaves_nothing(qgis_app, qtbot, server, tmp_path):
    srv = server()
    srv.delay = 0.02
    ok, message, progress, _ = run(qtbot, srv.url("model.bin"), tmp_path / "sam.pth", SHA,
                                   on_progress=lambda dl: dl.cancel())
    assert not ok and "cancelled" in message
    assert os.listdir(tmp_path) == []
    assert 0 < progress[0][0] < len(DATA)


def test_interrupted_download_is_kept_and_resumed_through_the_redirect(qgis_app, qtbot, server, tmp_path):
    srv = server()
    srv.cut_after["model.bin"] = 1_000_000
    dest = tmp_path / "sam.bin"
    ok, message, _, _ = run(qtbot, srv.url("model.bin"), dest, None)
    assert not ok and "press Download again to resume" in message
    kept = part_path(dest).stat().st_size
    assert 0 < kept <= 1_000_000 and DATA.startswith(part_path(dest).read_bytes())
    ok, _, progress, dl = run(qtbot, srv.url("model.bin"), dest, None)
    assert ok and dl.checked_by == "host" and dest.read_bytes() == DATA and not part_path(dest).exists()
    assert srv.requests[-2:] == [(f"/repo/resolve/{'0' * 40}/model.bin", f"bytes={kept}-"),
                                 ("/cdn/model.bin", f"bytes={kept}-")]
    assert progress[-1] == (len(DATA), len(DATA))


def test_restarts_when_the_server_ignores_range(qgis_app, qtbot, server, tmp_path):
    srv = server()
    srv.ranges = False
    dest = tmp_path / "sam.pth"
    part_path(dest).write_bytes(b"x" * 5000)  # would corrupt the file if appended to
    ok, _, _, _ = run(qtbot, srv.cdn_url("model.bin"), dest, SHA)
    assert ok and dest.read_bytes() == DATA
    assert srv.requests == [("/cdn/model.bin", "bytes=5000-")] and srv.sent == len(DATA)


def test_restarts_when_the_partial_file_is_longer_than_the_file(qgis_app, qtbot, server, tmp_path):
    srv = server()
    dest = tmp_path / "sam.pth"
    part_path(dest).write_bytes(DATA + b"extra")
    ok, _, _, _ = run(qtbot, srv.cdn_url("model.bin"), dest, SHA)
    assert ok and dest.read_bytes() == DATA
    assert [r for _, r in srv.requests] == [f"bytes={len(DATA) + 5}-", None]


def test_http_error_is_reported_and_nothing_kept(qgis_app, qtbot, server, tmp_path):
    srv = server()
    srv.status = 404
    url = srv.url("model.bin")
    ok, message, _, _ = run(qtbot, url, tmp_path / "sam.pth", SHA)
    assert not ok and "HTTP 404" in message and url in message
    assert os.listdir(tmp_path) == []


def test_unreachable_server_keeps_nothing_new(qgis_app, qtbot, server, tmp_path):
    srv = server()
    url = srv.url("model.bin")
    srv.close()
    ok, message, _, _ = run(qtbot, url, tmp_path / "sam.pth", SHA)
    assert not ok and "failed" in message and "press Download again to resume" in message
    assert os.listdir(tmp_path) == []


def test_finish_download_host_header_and_content_range(tmp_path):
    part = tmp_path / "a.part"
    good = hashlib.sha256(b"abc").hexdigest()
    part.write_bytes(b"abc")
    assert finish_download(part, tmp_path / "a", None, good, host=good.upper()) == "host"
    part.write_bytes(b"abc")
    assert finish_download(part, tmp_path / "b", good.upper(), good, host="f" * 64) == "pinned"
    part.write_bytes(b"abd")
    with pytest.raises(ChecksumError, match="The file was deleted"):
        finish_download(part, tmp_path / "c", good, hashlib.sha256(b"abd").hexdigest())
    part.write_bytes(b"abc")
    with pytest.raises(ChecksumError, match="did not say the SHA256"):
        finish_download(part, tmp_path / "d", None, good)
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]
    assert host_sha256(f'"{good}"') == good and host_sha256(f'W/"{good.upper()}"') == good
    assert host_sha256(good) == good and host_sha256('"abc123"') is None and host_sha256("") is None
    assert content_range_start("bytes 100-199/200") == 100
    assert content_range_start("bytes 0-0/*") == 0
    assert content_range_start("bytes */200") is None and content_range_start("") is None
