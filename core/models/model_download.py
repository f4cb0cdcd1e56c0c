"""Downloading model files through QGIS's network stack (QGIS adapter).

``QgsNetworkAccessManager`` applies the proxy, authentication and SSL settings
the user made in QGIS. A file is streamed to ``<name>.part`` beside its
destination while its SHA256 is computed, and renamed only when the checksum
matches: the one given (published by the model's publisher) or, when none is
given, the one the host serves. Hugging Face answers a file's ``resolve`` URL
with a redirect to its CDN that carries ``X-Linked-Etag: "<sha256>"`` and
``X-Linked-Size`` for LFS files; redirects are therefore followed here, one by
one, so those headers are seen. A ``.part`` left by an interrupted download is
resumed with an HTTP ``Range`` request where the server answers 206.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import BinaryIO, Optional

from qgis.core import QgsNetworkAccessManager
from qgis.PyQt.QtCore import QObject, QUrl, pyqtSignal
from qgis.PyQt.QtNetwork import QNetworkReply, QNetworkRequest

from .. import fs_checks as fs
from ..errors import ModelError

log = logging.getLogger("ai_segmentation")
_CHUNK = 1 << 20
MAX_REDIRECTS = 10
_SHA256 = re.compile(r'^\s*(?:W/)?"?([0-9a-fA-F]{64})"?\s*$')
MODELS_FOLDER, MODEL_FILE = "models folder", "model file"  # in messages


class ChecksumError(ModelError):
    """A downloaded file does not have the expected SHA256; it has been deleted."""


def part_path(dest: os.PathLike) -> Path:
    """Temporary name of a download in progress, beside its destination."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def host_sha256(header: str) -> Optional[str]:
    """The SHA256 in an ``X-Linked-Etag`` header (quoted or not), lower case; None if it holds none."""
    m = _SHA256.match(header or "")
    return m.group(1).lower() if m else None


def finish_download(part: os.PathLike, dest: os.PathLike, expected: Optional[str], actual: str,
                    host: Optional[str] = None) -> str:
    """Move a complete download into place if its checksum matches.

    Args:
        expected: the published SHA256, or None to check against ``host``.
        actual: SHA256 of the downloaded bytes.
        host: the SHA256 the host served for the file, if any.

    Returns:
        ``"pinned"`` (matched ``expected``) or ``"host"`` (matched ``host``).

    Raises:
        ChecksumError: no checksum to compare with, or a different one; ``part`` was deleted.
    """
    name = Path(dest).name
    want, source = (expected, "pinned") if expected else (host, "host")
    if not want:
        Path(part).unlink(missing_ok=True)
        raise ChecksumError(f"the host did not say the SHA256 of '{name}', so the download cannot be "
                            "checked: it was deleted. Nothing unverified is installed.")
    if actual.lower() != want.lower():
        Path(part).unlink(missing_ok=True)
        said = "the model catalogue lists" if source == "pinned" else "the host says it should be"
        raise ChecksumError(f"the download of '{name}' is corrupt or not the expected file: its SHA256 is "
                            f"{actual}, but {said} {want.lower()}. The file was deleted; try again.")
    os.replace(part, dest)
    return source


def content_range_start(header: str) -> Optional[int]:
    """First byte of an HTTP ``Content-Range: bytes START-END/TOTAL`` header, or None."""
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*$", header or "")
    return int(m.group(1)) if m else None


def _header(reply: QNetworkReply, name: bytes) -> str:
    return bytes(reply.rawHeader(name)).decode("latin-1")


class ModelDownload(QObject):
    """One file; call :meth:`start`, then wait for :attr:`finished`.

    Args:
        url: http(s) URL of the file.
        dest: final path; its folder is created if needed.
        sha256: the published hex checksum; None to require the one the host serves.

    Signals:
        progress(received, total): bytes so far and in all (-1 when the server does not say).
        finished(ok, message): ``message`` is the destination path on success, else
            the reason (cancelled, HTTP error, checksum mismatch, a models folder that cannot
            be written, a full disk); a failure leaves no ``.part`` file, except after a
            network error (to resume).

    After success, :attr:`sha256` is the file's checksum and :attr:`checked_by` says
    what it matched (``"pinned"`` or ``"host"``).
    """

    progress = pyqtSignal("qint64", "qint64")
    finished = pyqtSignal(bool, str)

    def __init__(self, url: str, dest: os.PathLike, sha256: Optional[str] = None,
                 parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.url = url
        self.dest = Path(dest)
        self.expected = sha256.lower() if sha256 else None
        self.part = part_path(self.dest)
        self.sha256: Optional[str] = None
        self.checked_by: Optional[str] = None
        self._reply: Optional[QNetworkReply] = None
        self._file: Optional[BinaryIO] = None
        self._hash = hashlib.sha256()
        self._offset = 0  # bytes already in .part when the request was sent
        self._host_sha: Optional[str] = None
        self._host_size: Optional[int] = None
        self._mismatch: Optional[str] = None  # a host checksum that differs from the published one
        self._disk_problem: Optional[str] = None  # the .part file cannot be written (or will not fit)
        self._hops = 0
        self._cancelled = False
        self._restarted = False

    def start(self) -> None:
        """Send the request (resuming a leftover ``.part``); returns at once. A models folder that
        cannot be created or written ends it at once, before any request (:attr:`finished`)."""
        self._hash = hashlib.sha256()
        try:
            fs.check_folder(str(self.dest.parent), MODELS_FOLDER, create=True, error=ModelError)
            self._offset = self.part.stat().st_size if self.part.is_file() else 0
            if self._offset:
                # the digest must cover the bytes already there (a few seconds for GBs; resumes are rare)
                with open(self.part, "rb") as fh:
                    for chunk in iter(lambda: fh.read(_CHUNK), b""):
                        self._hash.update(chunk)
        except ModelError as exc:
            self.finished.emit(False, str(exc))
            return
        except OSError as exc:
            self._fail(str(fs.os_error(exc, "read", "partial download", str(self.part),
                                       "delete it, then press Download again", ModelError)), keep=True)
            return
        self._hops = 0
        log.info("downloading %s to %s (from byte %d)", self.url, self.part, self._offset)
        self._send(QUrl(self.url))

    def _send(self, url: QUrl) -> None:
        request = QNetworkRequest(url)
        # redirects one by one: the first hop carries the host's checksum headers
        request.setAttribute(QNetworkRequest.Attribute.RedirectPolicyAttribute,
                             QNetworkRequest.RedirectPolicy.ManualRedirectPolicy)
        if self._offset:
            request.setRawHeader(b"Range", f"bytes={self._offset}-".encode())
        self._reply = QgsNetworkAccessManager.instance().get(request)
        self._reply.metaDataChanged.connect(self._on_headers)
        self._reply.readyRead.connect(self._on_ready_read)
        self._reply.downloadProgress.connect(self._on_progress)
        self._reply.finished.connect(self._on_finished)

    def cancel(self) -> None:
        """Stop; the partial file is deleted (nothing is left behind)."""
        self._cancelled = True
        if self._reply is not None:
            self._reply.abort()

    @staticmethod
    def _status(reply: QNetworkReply) -> int:
        return int(reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute) or 0)

    def _on_headers(self) -> None:
        reply = self._reply
        if reply is None:
            return
        sha = host_sha256(_header(reply, b"X-Linked-Etag"))
        size = _header(reply, b"X-Linked-Size").strip()
        self._host_sha = sha or self._host_sha
        self._host_size = int(size) if size.isdigit() else self._host_size
        if sha and self.expected and sha != self.expected:  # no need to fetch what will be refused
            self._mismatch = sha
            reply.abort()
        elif self._status(reply) in (200, 206):
            self._check_space(reply)

    def _check_space(self, reply: QNetworkReply) -> None:
        """Stop before writing when the server's ``Content-Length`` will not fit on the disk."""
        length = reply.header(QNetworkRequest.KnownHeaders.ContentLengthHeader)
        free = fs.free_bytes(str(self.dest.parent))
        if length and free is not None and free < int(length):
            self._disk_problem = str(fs.os_error(
                OSError(errno.ENOSPC, "no space"), "write", MODEL_FILE, str(self.dest),
                f"it needs {fs.format_size(int(length))} and {fs.format_size(free)} are free: free some space, or "
                "choose a models folder on another disk", ModelError))
            reply.abort()

    def _open(self, reply: QNetworkReply) -> BinaryIO:
        if self._offset:
            start = content_range_start(_header(reply, b"Content-Range"))
            if self._status(reply) == 206 and start == self._offset:
                return open(self.part, "ab")
            log.info("no partial content (HTTP %d): restarting from byte 0", self._status(reply))
            self._offset = 0
            self._hash = hashlib.sha256()
        return open(self.part, "wb")

    def _on_ready_read(self) -> None:
        reply = self._reply
        if reply is None:
            return
        data = bytes(reply.readAll())
        if self._status(reply) not in (200, 206) or self._cancelled:  # redirects and error pages
            return
        try:
            if self._file is None:
                self._file = self._open(reply)
            self._file.write(data)
        except OSError as exc:  # read-only folder, full disk
            self._disk_problem = str(fs.os_error(exc, "write", MODEL_FILE, str(self.dest), error=ModelError))
            reply.abort()
            return
        self._hash.update(data)

    def _on_progress(self, received: int, total: int) -> None:
        if self._reply is not None and self._status(self._reply) in (200, 206):
            self.progress.emit(self._offset + received, self._offset + total if total > 0 else -1)

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()  # writes what is buffered: a full disk may show only now
            except OSError as exc:
                self._disk_problem = self._disk_problem or str(
                    fs.os_error(exc, "write", MODEL_FILE, str(self.dest), error=ModelError))

    def _fail(self, message: str, keep: bool = False) -> None:
        if not keep:
            with contextlib.suppress(OSError):
                self.part.unlink(missing_ok=True)
        self.finished.emit(False, message)

    def _on_finished(self) -> None:
        reply, self._reply = self._reply, None
        if reply is None:
            return
        status, error, error_text = self._status(reply), reply.error(), reply.errorString()
        location = reply.attribute(QNetworkRequest.Attribute.RedirectionTargetAttribute)
        target = reply.url().resolved(location) if location is not None else None
        reply.deleteLater()
        self._close()
        if self._disk_problem:
            self._fail(self._disk_problem)
        elif self._mismatch:
            self._fail(f"the host now serves a different '{self.dest.name}' (SHA256 {self._mismatch}) than the "
                       f"model catalogue lists ({self.expected}): nothing was downloaded or installed.")
        elif self._cancelled:
            self._fail("download cancelled; the partial file was deleted")
        elif status in (301, 302, 303, 307, 308) and target is not None:
            self._redirect(target)
        elif status == 416 and not self._restarted:  # our .part is not a prefix the server knows
            self._restarted = True
            self.part.unlink(missing_ok=True)
            self.start()
        elif status >= 400:
            self._fail(f"download of {self.url} failed: the server answered HTTP {status}")
        elif error != QNetworkReply.NetworkError.NoError:
            kept = self.part.stat().st_size if self.part.is_file() else 0
            self._fail(f"download of {self.url} failed: {error_text}. {kept} bytes were kept; "
                       "press Download again to resume.", keep=True)
        else:
            self._finish()

    def _redirect(self, target: QUrl) -> None:
        self._hops += 1
        if self._hops > MAX_REDIRECTS:
            self._fail(f"download of {self.url} failed: more than {MAX_REDIRECTS} redirects")
        elif target.scheme() not in ("https", "http") or (
                target.scheme() == "http" and QUrl(self.url).scheme() == "https"):
            self._fail(f"download of {self.url} failed: refused a redirect to {target.toString()} "
                       "(only to https)")
        else:
            self._send(target)

    def _finish(self) -> None:
        try:
            if not self.part.is_file():  # an empty body never opened the file
                self.part.write_bytes(b"")
            size, actual = self.part.stat().st_size, self._hash.hexdigest()
            if self._host_size is not None and size != self._host_size:
                self.part.unlink()
                raise ChecksumError(f"the download of '{self.dest.name}' is {size} bytes, but the host says "
                                    f"{self._host_size}: it was deleted; try again.")
            self.checked_by = finish_download(self.part, self.dest, self.expected, actual, self._host_sha)
        except ChecksumError as exc:
            self._fail(str(exc))
            return
        except OSError as exc:
            self._fail(str(fs.os_error(exc, "write", MODEL_FILE, str(self.dest), error=ModelError)))
            return
        self.sha256 = actual
        log.info("downloaded %s (SHA256 %s, checked against the %s checksum)", self.dest, actual,
                 "published" if self.checked_by == "pinned" else "host's")
        self.finished.emit(True, str(self.dest))
