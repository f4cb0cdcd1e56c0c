"""Downloading model files through QGIS's network stack (QGIS adapter).

``QgsNetworkAccessManager`` applies the proxy, authentication and SSL settings
the user made in QGIS. The file is streamed to ``<name>.part`` beside its
destination while its SHA256 is computed, and renamed only when the checksum
matches. A ``.part`` left by an interrupted download is resumed with an HTTP
``Range`` request where the server answers 206; a 200 answer restarts it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import BinaryIO, Optional

from qgis.core import QgsNetworkAccessManager
from qgis.PyQt.QtCore import QObject, QUrl, pyqtSignal
from qgis.PyQt.QtNetwork import QNetworkReply, QNetworkRequest

from .errors import ModelError

log = logging.getLogger("ai_segmentation")
_CHUNK = 1 << 20


class ChecksumError(ModelError):
    """A downloaded file does not have the published SHA256; it has been deleted."""


def part_path(dest: os.PathLike) -> Path:
    """Temporary name of a download in progress, beside its destination."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def finish_download(part: os.PathLike, dest: os.PathLike, expected: Optional[str], actual: str) -> str:
    """Move a complete download into place if its checksum matches.

    Returns:
        ``"verified"``, or ``"unverified"`` when no checksum is known.

    Raises:
        ChecksumError: ``actual`` differs from ``expected``; ``part`` was deleted.
    """
    if expected and actual.lower() != expected.lower():
        Path(part).unlink(missing_ok=True)
        raise ChecksumError(
            f"the download of '{Path(dest).name}' is corrupt or not the expected file: its SHA256 is "
            f"{actual}, expected {expected}. The file was deleted; try again."
        )
    os.replace(part, dest)
    return "verified" if expected else "unverified"


def content_range_start(header: str) -> Optional[int]:
    """First byte of an HTTP ``Content-Range: bytes START-END/TOTAL`` header, or None."""
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*$", header or "")
    return int(m.group(1)) if m else None




class ModelDownload(QObject):
    """One download; call :meth:`start`, then wait for :attr:`finished`.

    Args:
        url: http(s) URL of the file.
        dest: final path; its folder is created if needed.
        sha256: expected hex checksum; ``None`` accepts the file "unverified".

    Signals:
        progress(received, total): bytes so far and in all (-1 when the server does not say).
        finished(ok, message): ``message`` is the destination path on success, else
            the reason (cancelled, HTTP error, checksum mismatch).
    """

    progress = pyqtSignal("qint64", "qint64")
    finished = pyqtSignal(bool, str)

    def __init__(self, url: str, dest: os.PathLike, sha256: Optional[str] = None,
                 parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.url = url
        self.dest = Path(dest)
        self.sha256 = sha256
        self.part = part_path(self.dest)
        self._reply: Optional[QNetworkReply] = None
        self._file: Optional[BinaryIO] = None
        self._hash = hashlib.sha256()
        self._offset = 0  # bytes already in .part when the request was sent
        self._cancelled = False
        self._restarted = False

    def start(self) -> None:
        """Send the request (resuming a leftover ``.part``); returns at once."""
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self._hash = hashlib.sha256()
        self._offset = self.part.stat().st_size if self.part.is_file() else 0
        if self._offset:
            # the digest must cover the bytes already there (a few seconds for GBs; resumes are rare)
            with open(self.part, "rb") as fh:
                for chunk in iter(lambda: fh.read(_CHUNK), b""):
                    self._hash.update(chunk)
        request = QNetworkRequest(QUrl(self.url))
        # GitHub serves MobileSAM through a redirect; https -> http is refused
        request.setAttribute(
            QNetworkRequest.Attribute.RedirectPolicyAttribute, QNetworkRequest.RedirectPolicy.NoLessSafeRedirectPolicy
        )
        if self._offset:
            request.setRawHeader(b"Range", f"bytes={self._offset}-".encode())
        log.info("downloading %s to %s (from byte %d)", self.url, self.part, self._offset)
        self._reply = QgsNetworkAccessManager.instance().get(request)
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

    def _open(self, reply: QNetworkReply) -> BinaryIO:
        if self._offset:
            header = bytes(reply.rawHeader(b"Content-Range")).decode("latin-1")
            if self._status(reply) == 206 and content_range_start(header) == self._offset:
                return open(self.part, "ab")
            log.info("no partial content (HTTP %d): restarting from byte 0", self._status(reply))
            self._offset = 0
            self._hash = hashlib.sha256()
        return open(self.part, "wb")

    def _on_ready_read(self) -> None:
        reply = self._reply
        assert reply is not None
        data = bytes(reply.readAll())
        if self._status(reply) >= 400 or self._cancelled:  # an error page is not the model
            return
        if self._file is None:
            self._file = self._open(reply)
        self._file.write(data)
        self._hash.update(data)

    def _on_progress(self, received: int, total: int) -> None:
        self.progress.emit(self._offset + received, self._offset + total if total > 0 else -1)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _on_finished(self) -> None:
        reply, self._reply = self._reply, None
        assert reply is not None
        status, error, error_text = self._status(reply), reply.error(), reply.errorString()
        reply.deleteLater()
        self._close()
        if self._cancelled:
            self.part.unlink(missing_ok=True)
            self.finished.emit(False, "download cancelled; the partial file was deleted")
        elif status == 416 and not self._restarted:  # our .part is not a prefix the server knows
            self._restarted = True
            self.part.unlink(missing_ok=True)
            self.start()
        elif status >= 400:
            self.part.unlink(missing_ok=True)
            self.finished.emit(False, f"download of {self.url} failed: the server answered HTTP {status}")
        elif error != QNetworkReply.NetworkError.NoError:
            kept = self.part.stat().st_size if self.part.is_file() else 0
            self.finished.emit(False, f"download of {self.url} failed: {error_text}. "
                               f"{kept} bytes were kept; press Download again to resume.")
        else:
            self._finish()

    def _finish(self) -> None:
        if not self.part.is_file():  # an empty body never opened the file
            self.part.write_bytes(b"")
        try:
            check = finish_download(self.part, self.dest, self.sha256, self._hash.hexdigest())
        except ChecksumError as exc:
            self.finished.emit(False, str(exc))
            return
        except OSError as exc:
            self.part.unlink(missing_ok=True)
            self.finished.emit(False, f"could not save '{self.dest}': {exc}")
            return
        log.info("downloaded %s (%s checksum)", self.dest, check)
        self.finished.emit(True, str(self.dest))
