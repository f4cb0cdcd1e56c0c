"""Downloads through QGIS's network stack from a local HTTP server (with Range support)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.model_download import ChecksumError, ModelDownload, content_range_start, finish_download, part_path

DATA = os.urandom(3 * 2**20 + 12345)
SHA = hashlib.sha256(DATA).hexdigest()
CHUNK = 64 * 1024


class FileServer:
    """Serves DATA at /model.bin on 127.0.0.1; records Range headers and bytes sent."""

    def __init__(self, ranges: bool = True, delay: float = 0.0, status: int = 200) -> None:
        self.ranges, self.delay, self.status = ranges, delay, status
        self.range_headers: list = []
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/model.bin"

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        header = req.headers.get("Range")
        self.range_headers.append(header)
        if self.status != 200:
            req.send_error(self.status)
            return
        start = int(header[len("bytes="):].rstrip("-")) if header and self.ranges else 0
        if start >= len(DATA):
            req.send_response(416)
            req.send_header("Content-Range", f"bytes */{len(DATA)}")
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        req.send_response(206 if start else 200)
        if start:
            req.send_header("Content-Range", f"bytes {start}-{len(DATA) - 1}/{len(DATA)}")
        req.send_header("Content-Length", str(len(DATA) - start))
        req.end_headers()
        try:
            for i in range(start, len(DATA), CHUNK):
                chunk = DATA[i:i + CHUNK]
                self.sent += len(chunk)  # counted first: the client may finish before write() returns
                req.wfile.write(chunk)
                time.sleep(self.delay)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def make(**kwargs) -> FileServer:
        servers.append(FileServer(**kwargs))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def run(qtbot, url: str, dest: Path, sha256, on_progress=None, timeout: int = 30000):
    dl = ModelDownload(url, dest, sha256)
    progress = []
    dl.progress.connect(lambda got, total: progress.append((got, total)))
    if on_progress:
        dl.progress.connect(lambda *_: on_progress(dl))
    with qtbot.waitSignal(dl.finished, timeout=timeout) as blocker:
        dl.start()
    ok, message = blocker.args
    return ok, message, progress


def test_download_verified_with_progress(qgis_app, qtbot, server, tmp_path):
    srv = server()
    dest = tmp_path / "models" / "sam.pth"
    ok, message, progress = run(qtbot, srv.url, dest, SHA)
    assert ok and message == str(dest)
    assert dest.read_bytes() == DATA and not part_path(dest).exists()
    assert progress[-1] == (len(DATA), len(DATA))
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)
    assert srv.range_headers == [None]


def test_unknown_checksum_is_accepted_unverified(qgis_app, qtbot, server, tmp_path):
    ok, _, _ = run(qtbot, server().url, tmp_path / "sam.pth", None)
    assert ok and (tmp_path / "sam.pth").read_bytes() == DATA


def test_checksum_mismatch_deletes_the_file(qgis_app, qtbot, server, tmp_path):
    dest = tmp_path / "sam.pth"
    ok, message, _ = run(qtbot, server().url, dest, "0" * 64)
    assert not ok
    assert f"its SHA256 is {SHA}, expected {'0' * 64}. The file was deleted" in message
    assert os.listdir(tmp_path) == []


def test_cancelled_download_leaves_nothing(qgis_app, qtbot, server, tmp_path):
    srv = server(delay=0.02)
    dest = tmp_path / "sam.pth"
    ok, message, progress = run(qtbot, srv.url, dest, SHA, on_progress=lambda dl: dl.cancel())
    assert not ok and "cancelled" in message
    assert os.listdir(tmp_path) == []
    assert 0 < progress[0][0] < len(DATA)


def test_resumes_with_a_range_request(qgis_app, qtbot, server, tmp_path):
    srv = server()
    dest = tmp_path / "sam.pth"
    kept = 1_000_003
    part_path(dest).write_bytes(DATA[:kept])
    ok, _, progress = run(qtbot, srv.url, dest, SHA)
    assert ok and dest.read_bytes() == DATA and not part_path(dest).exists()
    assert srv.range_headers == [f"bytes={kept}-"]
    assert srv.sent == len(DATA) - kept
    assert progress[-1] == (len(DATA), len(DATA))


def test_restarts_when_the_server_ignores_range(qgis_app, qtbot, server, tmp_path):
    srv = server(ranges=False)
    dest = tmp_path / "sam.pth"
    part_path(dest).write_bytes(b"x" * 5000)  # would corrupt the file if appended to
    ok, _, _ = run(qtbot, srv.url, dest, SHA)
    assert ok and dest.read_bytes() == DATA
    assert srv.range_headers == ["bytes=5000-"] and srv.sent == len(DATA)


def test_restarts_when_the_partial_file_is_longer_than_the_file(qgis_app, qtbot, server, tmp_path):
    srv = server()
    dest = tmp_path / "sam.pth"
    part_path(dest).write_bytes(DATA + b"extra")
    ok, _, _ = run(qtbot, srv.url, dest, SHA)
    assert ok and dest.read_bytes() == DATA
    assert srv.range_headers == [f"bytes={len(DATA) + 5}-", None]


def test_http_error_is_reported_and_nothing_kept(qgis_app, qtbot, server, tmp_path):
    srv = server(status=404)
    ok, message, _ = run(qtbot, srv.url, tmp_path / "sam.pth", SHA)
    assert not ok and "HTTP 404" in message and srv.url in message
    assert os.listdir(tmp_path) == []


def test_unreachable_server_keeps_nothing_new(qgis_app, qtbot, server, tmp_path):
    srv = server()
    url = srv.url
    srv.close()
    ok, message, _ = run(qtbot, url, tmp_path / "sam.pth", SHA)
    assert not ok and "failed" in message and "press Download again to resume" in message
    assert os.listdir(tmp_path) == []


def test_finish_download_and_content_range(tmp_path):
    part = tmp_path / "a.part"
    part.write_bytes(b"abc")
    assert finish_download(part, tmp_path / "a", None, "whatever") == "unverified"
    assert (tmp_path / "a").read_bytes() == b"abc"
    part.write_bytes(b"abc")
    good = hashlib.sha256(b"abc").hexdigest()
    assert finish_download(part, tmp_path / "b", good.upper(), good) == "verified"
    part.write_bytes(b"abd")
    with pytest.raises(ChecksumError, match="The file was deleted"):
        finish_download(part, tmp_path / "c", good, hashlib.sha256(b"abd").hexdigest())
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]
    assert content_range_start("bytes 100-199/200") == 100
    assert content_range_start("bytes 0-0/*") == 0
    assert content_range_start("bytes */200") is None and content_range_start("") is None
