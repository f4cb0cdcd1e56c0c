"""File and folder checks with messages in the plugin's words (no Qt, no GDAL).

Every file or folder the plugin reads, writes or creates is checked here, or its ``OSError`` is
turned into a message here: the message names the path, says what is wrong with it (missing,
unreadable, read-only, a file where a folder is expected or the reverse, a full disk) and what to
do. Outputs are checked before any long computation starts (:func:`check_output_file`).

Each check raises ``error(message)``: :class:`FileAccessError` by default, or the caller's own
:class:`~core.errors.SegmentationError` subclass (``ModelError``, ``RasterReadError``...), so the
GUI and Processing show it as a message, never a traceback. A :class:`FileAccessError` also
carries the path and the kind of problem (:data:`MISSING`, :data:`DENIED`...).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from typing import Optional, Sequence, Tuple, Type

from .errors import SegmentationError

MIN_FREE_BYTES = 1 << 20  # an output folder with less free space than this is full
# Kinds of problem.
MISSING, NOT_A_FOLDER, IS_A_FOLDER, DENIED, READ_ONLY, FULL, BAD_FORMAT, OTHER = (
    "missing", "not a folder", "is a folder", "denied", "read-only", "full", "format", "other")
_PROBE = ".ai_segmentation-probe-"


class FileAccessError(SegmentationError):
    """A file or folder cannot be read, written or created.

    Attributes:
        path: the file or folder named in the message.
        kind: :data:`MISSING`, :data:`NOT_A_FOLDER`, :data:`IS_A_FOLDER`, :data:`DENIED`,
            :data:`READ_ONLY`, :data:`FULL`, :data:`BAD_FORMAT` or :data:`OTHER`.
    """

    def __init__(self, message: str, path: str = "", kind: str = OTHER) -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind


ErrorType = Type[Exception]


def _make(error: ErrorType, message: str, path: str, kind: str) -> SegmentationError:
    exc = error(message)
    if isinstance(exc, FileAccessError):
        exc.path, exc.kind = path, kind
    return exc  # type: ignore[return-value]


def is_local_path(uri: str) -> bool:
    """A plain file path: not ``GPKG:...``, ``/vsizip/...``, ``memory:``, a URL or VRT XML
    (``C:\\data`` and ``C:/data`` are paths)."""
    return bool(uri) and not (uri.lstrip().startswith("<") or uri.startswith("/vsi")
                              or re.match(r"^[A-Za-z][\w+.-]+:(?![\\/])", uri))


def file_in_the_way(path: str) -> Optional[str]:
    """The nearest existing ancestor of ``path`` that is not a folder (why ENOTDIR), or None."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.lexists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            return None
        parent = up
    return parent if parent and os.path.lexists(parent) and not os.path.isdir(parent) else None


def reason(exc: OSError, path: str) -> Tuple[str, str]:
    """``(kind, words)`` for an OSError on ``path``: ``"permission denied"``, ``"the disk is full"``..."""
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return DENIED, "permission denied"
    if code == errno.EROFS:
        return READ_ONLY, "the disk is read-only"
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return FULL, "the disk is full"
    if code == errno.ENOTDIR:
        blocker = file_in_the_way(path)
        return NOT_A_FOLDER, f"'{blocker}' is a file, not a folder" if blocker else "part of the path is not a folder"
    if code == errno.EISDIR:
        return IS_A_FOLDER, "it is a folder, not a file"
    if code == errno.ENOENT:
        return MISSING, "it does not exist"
    if code == errno.EEXIST:
        return NOT_A_FOLDER, "a file of that name is in the way"
    if code == errno.ENAMETOOLONG:
        return OTHER, "the path is too long"
    if code == errno.EIO:
        return OTHER, "input/output error (the disk or network share may be failing)"
    free = free_bytes(_existing_folder(path))
    if free is not None and free < MIN_FREE_BYTES:  # short writes (numpy's) carry no errno
        return FULL, "the disk is full"
    return OTHER, exc.strerror or str(exc)


def _existing_folder(path: str) -> str:
    """The nearest existing folder at or above ``path``."""
    folder = os.path.abspath(path)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return folder


_REMEDY = {
    MISSING: "check the path",
    NOT_A_FOLDER: "check the path",
    IS_A_FOLDER: "choose a file",
    DENIED: "give yourself access to it, or choose another location",
    READ_ONLY: "choose a folder on a writable disk",
    FULL: "free some space, or choose a folder on another disk",
    OTHER: "check the disk and try again",
}


def os_error(exc: OSError, action: str, what: str, path: str, remedy: str = "",
             error: ErrorType = FileAccessError) -> SegmentationError:
    """The plugin's error for ``exc`` raised while doing ``action`` (``"read"``, ``"write"``,
    ``"create"``) on the ``what`` at ``path``: "cannot read the SAM encoder file '…': permission
    denied; give yourself read access to it, or copy it to a folder of yours"."""
    kind, words = reason(exc, path)
    if kind == DENIED and action == "read":
        default = "give yourself read access to it, or copy it to a folder of yours"
    elif kind == DENIED:
        default = "choose a folder you can write to"
    else:
        default = _REMEDY.get(kind, _REMEDY[OTHER])
    return _make(error, f"cannot {action} the {what} '{path}': {words}; {remedy or default}", path, kind)


def library_error(detail: str, action: str, what: str, path: str, error: ErrorType = FileAccessError,
                  library: str = "GDAL") -> SegmentationError:
    """The plugin's error for a ``library`` that failed to ``action`` the ``what`` at ``path`` saying
    only ``detail`` (no errno): a full disk when it says "No space left on device" or the disk is
    (nearly) full, else "<library>: <detail>". Call it before removing what was partly written."""
    full = os.strerror(errno.ENOSPC).lower() in detail.lower()
    return os_error(OSError(errno.ENOSPC if full else None, f"{library}: {detail}"), action, what, path, error=error)


def check_readable_file(path: str, what: str, error: ErrorType = FileAccessError, remedy: str = "") -> str:
    """``path`` made absolute, after checking that it is a file this user can read.

    Opens it and reads one byte (``os.access`` is wrong for root, ACLs and network shares).
    Raises ``error`` naming the path: missing, a folder, unreadable, or an I/O error;
    ``remedy`` replaces the default advice for an unreadable file.
    """
    if not path:
        raise _make(error, f"no {what} given: choose one", "", MISSING)
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise _make(error, f"cannot read the {what} '{path}': it is a folder, not a file; choose the file itself",
                     path, IS_A_FOLDER)
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        advice = "check the path, or choose the file again" if exc.errno == errno.ENOENT else remedy
        raise os_error(exc, "read", what, path, advice, error) from None
    return path


def _probe_writable(folder: str, what: str, error: ErrorType, shown: str, remedy: str = "") -> None:
    """Create and remove a temporary file in ``folder`` (the only test that never lies)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=_PROBE, dir=folder)
    except OSError as exc:
        raise os_error(exc, "write", what, shown, remedy, error) from None
    os.close(fd)
    with contextlib.suppress(OSError):  # a sticky folder may refuse; the probe is hidden and empty
        os.remove(probe)


def check_folder(path: str, what: str, create: bool = False, writable: bool = True,
                 error: ErrorType = FileAccessError, remedy: str = "") -> str:
    """``path`` made absolute, after checking that it is a folder (created if ``create``) that
    this user can write to (if ``writable``). ``remedy`` replaces the default advice."""
    if not path:
        raise _make(error, f"no {what} given: choose one", "", MISSING)
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise _make(error, f"cannot use the {what} '{path}': it is a file, not a folder; "
                            f"{remedy or 'choose a folder'}", path, NOT_A_FOLDER)
    if not os.path.isdir(path):
        if not create:
            raise _make(error, f"the {what} '{path}' does not exist; {remedy or 'create it, or choose another folder'}",
                         path, MISSING)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise os_error(exc, "create", what, path, remedy, error) from None
    if writable:
        _probe_writable(path, what, error, path, remedy)
    return path


def free_bytes(folder: str) -> Optional[int]:
    """Free bytes on the disk holding ``folder`` for this user; None if unknown."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def format_size(n: float) -> str:
    """``"512 KiB"``, ``"3.2 GiB"`` (binary units)."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n, i = n / 1024, i + 1
    return f"{n:.0f} {units[i]}" if i < 2 else f"{n:.1f} {units[i]}"


def check_output_place(path: str, what: str, error: ErrorType = FileAccessError) -> str:
    """``path`` made absolute, after checking that a file can stand there: not a folder, and in an
    existing folder (no file in the way). Touches nothing; permissions are the writer's to report."""
    if not path:
        raise _make(error, f"no {what} given: choose a file name", "", MISSING)
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise _make(error, f"cannot write the {what} '{path}': it is a folder; choose a file name", path,
                    IS_A_FOLDER)
    blocker = file_in_the_way(path)
    if blocker:
        raise _make(error, f"cannot write the {what} '{path}': '{blocker}' is a file, not a folder; "
                           "choose another folder", path, NOT_A_FOLDER)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise _make(error, f"cannot write the {what} '{path}': the folder '{folder}' does not exist; "
                           "create it, or choose another folder", path, MISSING)
    return path


def check_output_file(path: str, what: str, extensions: Sequence[str] = (), error: ErrorType = FileAccessError,
                      min_free: int = MIN_FREE_BYTES) -> str:
    """``path`` made absolute, after checking that the ``what`` can be written there, before any
    work is done: a supported extension (``extensions``, e.g. ``(".gpkg", ".shp")``; empty: any),
    :func:`check_output_place`, a folder this user can write to, on a disk that is not full.

    Nothing is left behind (the write test removes its file).
    """
    if path and extensions:
        ext = os.path.splitext(path)[1].lower()
        if ext not in [e.lower() for e in extensions]:
            got = f"'{ext}' is not a supported format" if ext else "the file name has no extension"
            shown = os.path.abspath(path)
            raise _make(error, f"cannot write the {what} '{shown}': {got}; use {', '.join(extensions)}",
                        shown, BAD_FORMAT)
    path = check_output_place(path, what, error)
    folder = os.path.dirname(path)
    _probe_writable(folder, what, error, path)
    free = free_bytes(folder)
    if free is not None and free < min_free:
        raise _make(error, f"cannot write the {what} '{path}': the disk is full ({format_size(free)} free); "
                           "free some space, or choose a folder on another disk", path, FULL)
    return path
