"""Model files on disk: the engine's signature check, discovery with a checksum cache, the best pair.

Qt-free. :func:`probe` is the one place that asks the engine what an ONNX file
is; every other module goes through it. Results and SHA256 are cached in a
JSON file keyed by path, size and modification time, so each file is hashed
and checked once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import fs_checks as fs
from ..errors import ModelError
from ..families import detect
from .catalogue import family_title

log = logging.getLogger("ai_segmentation")

CACHE_VERSION = 2
_CHUNK = 1 << 20  # bytes read at a time when hashing
# Families the engine runs (core/families): SAM (ViT-B/L/H, MobileSAM), SAM 2 / 2.1, EfficientSAM.
RUNNABLE_FAMILIES: Tuple[str, ...] = tuple(f.name for f in detect.FAMILIES)


def runs(family: Optional[str]) -> bool:
    """True when the engine runs models of ``family``."""
    return family in RUNNABLE_FAMILIES


def probe(path: os.PathLike) -> Tuple[str, str]:
    """``(family, role)`` of an ONNX model file, from the engine's graph-signature check (milliseconds).

    ``family`` is a :mod:`core.families` name ("sam", "sam2", "efficientsam"); ``role``
    is ``"encoder"`` or ``"decoder"``.

    Raises:
        ModelError: missing, unreadable, or not a model of a family the engine knows.
    """
    kind = detect.probe(path)
    return kind.family, kind.role


def precision_of(path: os.PathLike) -> str:
    """``"int8"`` for quantised files (by name, as written by this plugin and samexporter)."""
    name = os.path.basename(os.fspath(path)).lower()
    return "int8" if re.search(r"int8|quant|uint8", name) else "fp32"


def guess_model_type(path: os.PathLike) -> Optional[str]:
    """samexporter model type from a file name (``sam_vit_b_01ec64.pth`` -> ``"vit_b"``), or None."""
    name = os.path.basename(os.fspath(path)).lower()
    m = re.search(r"vit[_-]?([blh])(?![a-z])", name)
    if m:
        return f"vit_{m.group(1)}"
    return "mobile" if "mobile" in name else None


def role_from_name(path: os.PathLike) -> Optional[str]:
    """The role a file name claims (before any check): checkpoint, encoder, decoder or None."""
    name = os.path.basename(os.fspath(path)).lower()
    if name.endswith((".pth", ".pt")):
        return "checkpoint"
    return next((r for r in ("encoder", "decoder") if r in name), None)


def sha256_file(path: os.PathLike, cancelled: Optional[Callable[[], bool]] = None) -> Optional[str]:
    """Hex SHA256 of a file, read 1 MiB at a time; None if ``cancelled()`` turned True."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
            if cancelled and cancelled():
                return None
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelEntry:
    """A model file found on disk.

    Attributes:
        path: absolute path.
        size: bytes.
        sha256: hex digest; None when not hashed yet (quick look, see :func:`discover`).
        role: ``"encoder"``, ``"decoder"`` or ``"checkpoint"``; None when unusable.
        precision: ``"fp32"`` or ``"int8"``.
        model_type: samexporter model type guessed from the name, or None.
        family: model family from :func:`probe` (``"sam"``, ...); None for checkpoints and unchecked files.
        error: why the file is unusable; None when usable.
        verified: the SHA256 matches a published or recorded checksum.
        checked: hashed and probed (False: role taken from the file name only).
    """

    path: str
    size: int
    sha256: Optional[str]
    role: Optional[str]
    precision: str
    model_type: Optional[str]
    family: Optional[str] = None
    error: Optional[str] = None
    verified: bool = False
    checked: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None and self.role is not None

    @property
    def group(self) -> str:
        """Encoders and decoders with the same group belong together (model type, else name prefix)."""
        name = os.path.basename(self.path).lower()
        return self.model_type or re.split(r"[._-](encoder|decoder)", name)[0]


class HashCache:
    """JSON cache of checksums and check results, keyed by path, size and mtime."""

    def __init__(self, path: Optional[os.PathLike]) -> None:
        self.path = Path(path) if path else None
        self._data: Dict[str, dict] = {}
        if self.path and self.path.is_file():
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                if raw.get("version") == CACHE_VERSION:
                    self._data = raw.get("files", {})
            except (OSError, ValueError, AttributeError):
                log.warning("model cache '%s' is unreadable; rebuilding it", self.path)

    @staticmethod
    def _stamp(path: str) -> Tuple[int, int]:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns

    def get(self, path: str) -> Optional[dict]:
        item = self._data.get(path)
        try:
            if item and (item.get("size"), item.get("mtime_ns")) == self._stamp(path):
                return item
        except OSError:
            return None
        return None

    def put(self, path: str, **values: object) -> None:
        size, mtime = self._stamp(path)
        self._data[path] = dict(values, size=size, mtime_ns=mtime)

    def save(self) -> None:
        """Write the cache atomically. One that cannot be written (read-only profile, full disk) is
        only a warning: the results are lost, and the files are checked again next time."""
        if not self.path:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "files": self._data}, indent=1), "utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            log.warning("%s", fs.os_error(exc, "write", "model checksum cache", str(self.path),
                                          "make its folder writable (until then every model file is checked "
                                          "again each time)"))


def check_file(path: str, cache: HashCache, cancelled: Optional[Callable[[], bool]] = None) -> Optional[dict]:
    """Hash and probe ``path`` unless ``cache`` knows it unchanged; the cached item, None if cancelled."""
    item = cache.get(path)
    if item is None:
        digest = sha256_file(path, cancelled)
        if digest is None:
            return None
        family, role, error = None, "checkpoint", None
        if path.lower().endswith(".onnx"):
            try:
                family, role = probe(path)
            except ModelError as exc:
                role, error = None, str(exc)
        cache.put(path, sha256=digest, role=role, family=family, error=error)
        item = cache.get(path)
    return item


def model_files(folders: Iterable[os.PathLike]) -> List[str]:
    """Absolute paths of ``*.onnx``, ``*.pth`` and ``*.pt`` files directly in ``folders``."""
    seen: Dict[str, None] = {}
    for folder in folders:
        if folder and os.path.isdir(folder):
            try:
                names = sorted(os.listdir(folder))
            except OSError as exc:  # unreadable: its files cannot be listed
                log.warning("%s", fs.os_error(exc, "read", "models folder", os.fspath(folder)))
                continue
            for name in names:
                path = os.path.abspath(os.path.join(folder, name))
                # hidden names are downloads, exports and quantisations in progress
                wanted = name.lower().endswith((".onnx", ".pth", ".pt")) and not name.startswith(".")
                if wanted and os.path.isfile(path):
                    seen.setdefault(path)
    return list(seen)


def discover(
    folders: Sequence[os.PathLike],
    cache_path: Optional[os.PathLike] = None,
    on_file: Optional[Callable[[int, int, str], None]] = None,
    cancelled: Optional[Callable[[], bool]] = None,
    extra_files: Iterable[os.PathLike] = (),
    known: Optional[Mapping[str, str]] = None,
    check: bool = True,
) -> List[ModelEntry]:
    """Find, hash and check model files in ``folders`` (not recursively) and ``extra_files``.

    Args:
        folders: folders searched; missing ones are skipped.
        cache_path: JSON cache; results for unchanged files are reused.
        on_file: ``on_file(index, count, path)`` before each file, for progress.
        cancelled: stops early (returning what was done) when it turns True.
        extra_files: files outside those folders (installed and user-added pairs); missing ones are skipped.
        known: SHA256 -> description of published or recorded checksums ("verified").
        check: False for a quick look that never hashes nor opens a file: files the cache does
            not know get their role from their name and ``checked=False`` (the GUI thread uses this).
    """
    cache = HashCache(cache_path)
    paths = model_files(folders)
    paths += [p for p in dict.fromkeys(os.path.abspath(os.fspath(f)) for f in extra_files)
              if p not in paths and os.path.isfile(p)]
    entries = []
    for i, path in enumerate(paths):
        if cancelled and cancelled():
            break
        if on_file:
            on_file(i, len(paths), path)
        try:
            item = check_file(path, cache, cancelled) if check else cache.get(path)
            if item is None and check:
                break  # cancelled while hashing
            size = os.path.getsize(path)
        except OSError as exc:
            if not os.path.lexists(path):  # removed while we looked
                continue
            size, item = _size(path), {"sha256": None, "role": None, "family": None,
                                       "error": str(fs.os_error(exc, "read", "model file", path))}
        base = dict(path=path, size=size, precision=precision_of(path), model_type=guess_model_type(path))
        if item is None:
            entries.append(ModelEntry(sha256=None, role=role_from_name(path), checked=False, **base))
        else:
            entries.append(ModelEntry(
                sha256=item["sha256"], role=item["role"], family=item["family"], error=item["error"],
                verified=item["sha256"] in (known or {}), **base,
            ))
    if check:
        cache.save()
    return entries


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def best_pair(entries: Sequence[ModelEntry], prefer_int8: bool = True) -> Optional[Tuple[str, str]]:
    """``(encoder, decoder)`` paths of one group and family, int8 encoder first if asked; None if no pair."""
    encoders = [e for e in entries if e.ok and e.role == "encoder"]
    decoders = [e for e in entries if e.ok and e.role == "decoder"]
    rank = {"int8": 0, "fp32": 1} if prefer_int8 else {"fp32": 0, "int8": 1}
    for enc in sorted(encoders, key=lambda e: rank[e.precision]):
        matches = sorted((d for d in decoders if d.group == enc.group and d.family == enc.family),
                         key=lambda d: d.precision != "fp32")
        if matches:
            return enc.path, matches[0].path
    if len(decoders) == 1 and len({(e.group, e.family) for e in encoders}) == 1:  # one of each, names unrelated
        enc = sorted(encoders, key=lambda e: rank[e.precision])[0]
        if enc.family == decoders[0].family:
            return enc.path, decoders[0].path
    return None


def fp32_encoder(entries: Sequence[ModelEntry], preferred: Optional[str] = None) -> Optional[ModelEntry]:
    """The usable fp32 encoder to quantise (any family): ``preferred`` (a path) if it is one, else the first."""
    encoders = [e for e in entries if e.ok and e.role == "encoder" and e.precision == "fp32"]
    return next((e for e in encoders if e.path == preferred), encoders[0] if encoders else None)


def describe(entry: ModelEntry) -> str:
    """One line per file for the setup dialog."""
    size = f"{entry.size / 2**20:.0f} MiB" if entry.size >= 2**20 else f"{entry.size} bytes"
    name = os.path.basename(entry.path)
    if entry.error:
        return f"{name} ({size}): unusable: {entry.error}"
    if not entry.checked:
        return f"{name} ({size}): not checked yet"
    if entry.role is None:
        return f"{name} ({size}): unusable"
    what = "checkpoint" if entry.role == "checkpoint" else (
        f"{entry.precision} {entry.role} ({family_title(entry.family)})")
    if entry.verified:
        check = "checksum verified"
    elif entry.role == "checkpoint" and entry.model_type:
        check = "checksum differs from the official checkpoint"
    else:
        check = "no published checksum"
    return f"{name} ({size}): {what}, {check}"
