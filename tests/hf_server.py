"""A local HTTP server on 127.0.0.1 that answers like Hugging Face for LFS files.

``GET /<repo>/resolve/<rev>/<name>`` answers 302 with a relative ``Location`` to
``/cdn/<name>`` and the headers Hugging Face sends for LFS files,
``X-Linked-Etag: "<sha256>"`` and ``X-Linked-Size: <bytes>``; ``/cdn/<name>``
serves the bytes with ``Range`` support. Each knob below changes one behaviour,
to reproduce a failure.
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple

CHUNK = 64 * 1024


class HubServer:
    """Serves ``files`` (name -> bytes).

    Attributes:
        etag: name -> the SHA256 to announce instead of the real one (a mismatching header).
        no_etag: names served without ``X-Linked-Etag`` (a host that gives no checksum).
        size: name -> the size to announce in ``X-Linked-Size`` instead of the real one.
        no_length: names served without ``Content-Length`` (the body ends when the connection closes).
        cut_after: name -> bytes after which the next CDN answer breaks off (an interrupted download).
        ranges: False to ignore ``Range`` (always 200 from byte 0).
        status: an HTTP error code to answer everything with; 200 for normal service.
        delay: seconds between chunks.
        requests: ``(path, Range header)`` of every request, in order.
        sent: bytes of file content sent.
    """

    def __init__(self, files: Dict[str, bytes]) -> None:
        self.files = dict(files)
        self.etag: Dict[str, str] = {}
        self.no_etag: set = set()
        self.size: Dict[str, int] = {}
        self.no_length: set = set()
        self.cut_after: Dict[str, int] = {}
        self.ranges = True
        self.status = 200
        self.delay = 0.0
        self.requests: List[Tuple[str, Optional[str]]] = []
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
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, name: str, rev: str = "0" * 40) -> str:
        return f"{self.base}/repo/resolve/{rev}/{name}"

    def cdn_url(self, name: str) -> str:
        return f"{self.base}/cdn/{name}"

    def paths(self) -> List[str]:
        return [p for p, _ in self.requests]

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        header = req.headers.get("Range")
        self.requests.append((req.path, header))
        if self.status != 200:
            req.send_error(self.status)
            return
        kind, _, rest = req.path.lstrip("/").partition("/")
        name = rest.rsplit("/", 1)[-1]
        if name not in self.files:
            req.send_error(404)
        elif kind == "repo":
            self._redirect(req, name)
        else:
            self._serve(req, name, header)

    def _redirect(self, req: BaseHTTPRequestHandler, name: str) -> None:
        data = self.files[name]
        body = b"Found. Redirecting"
        req.send_response(302)
        req.send_header("Location", f"/cdn/{name}")
        if name not in self.no_etag:
            req.send_header("X-Linked-Etag", f'"{self.etag.get(name, hashlib.sha256(data).hexdigest())}"')
        req.send_header("X-Linked-Size", str(self.size.get(name, len(data))))
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def _serve(self, req: BaseHTTPRequestHandler, name: str, header: Optional[str]) -> None:
        data = self.files[name]
        start = int(header[len("bytes="):].rstrip("-")) if header and self.ranges else 0
        if start >= len(data):
            req.send_response(416)
            req.send_header("Content-Range", f"bytes */{len(data)}")
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        req.send_response(206 if start else 200)
        if start:
            req.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if name not in self.no_length:
            req.send_header("Content-Length", str(len(data) - start))
        req.end_headers()
        stop = self.cut_after.pop(name, None)
        end = min(len(data), start + stop) if stop is not None else len(data)
        try:
            for i in range(start, end, CHUNK):
                chunk = data[i:min(i + CHUNK, end)]
                self.sent += len(chunk)  # counted first: the client may finish before write() returns
                req.wfile.write(chunk)
                time.sleep(self.delay)
        except (BrokenPipeError, ConnectionResetError):
            return
        if end < len(data):  # break the connection mid-file, as a dropped network does
            req.wfile.flush()
            req.close_connection = True
            req.connection.close()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
