"""Persistent, size-capped cache of image embedding bundles, one entry per encoded crop.

An entry is ``<key>.npy``, every tensor of the family's bundle (see
:class:`ImageEmbedding`) flattened and concatenated as one float16 vector, plus a
``<key>.json`` sidecar holding the family, each tensor's name and shape in that order,
the image sizes and a SHA-256 of the vector. A SAM or EfficientSAM entry is 2 MiB, a
SAM 2.1 one 8 MiB (see :func:`entry_bytes`). Entries of format 1 (SAM only, before
families) have other keys: they are never read, and age out by LRU eviction.
Both files are written to temporary files and renamed into place, the sidecar last:
an entry exists only once it is whole, and an entry that fails its checks
(truncated, corrupt, foreign) is deleted and reported as a miss, never raised.
Least recently used entries are evicted beyond ``max_bytes``.
When an entry cannot be written (full disk, read-only folder) the last few are kept in
memory instead, so segmentation goes on, and the user is told once why and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .. import fs_checks as fs
from ..errors import ModelError
from ..families import detect
from ..families.base import IMAGE_EMBEDDINGS, ImageEmbedding

FORMAT_VERSION = 2
DEFAULT_MAX_BYTES = 2_000_000_000  # 2 GB: about 950 SAM crops, 240 SAM 2.1 crops
STALE_SECONDS = 3600  # temp files / orphans this old are left by a crash, not a writer at work
_ENTRIES = "embeddings"
_ENCODERS = "encoders.json"  # encoder file hashes by (path, size, mtime): ViT-B takes ~1 s to hash
_TIMINGS = "timings.json"  # measured encode seconds per crop, by encoder hash, for estimates
_LOG = logging.getLogger("ai_segmentation")
MEMORY_ENTRIES = 8  # entries kept in memory while the cache folder cannot be written
REMEDY = "choose another embedding cache folder in Settings > Options > AI Segmentation"


def default_cache_dir() -> str:
    """Per-user cache folder: %LOCALAPPDATA%, ~/Library/Caches or $XDG_CACHE_HOME (~/.cache)."""
    home = os.path.expanduser("~")
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    elif sys.platform == "darwin":
        base = os.path.join(home, "Library", "Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, "qgis-ai-segmentation")


def _atomic_write(path: str, write) -> None:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path: str) -> None:
    """Remove a file if it is there; another process may have removed it first."""
    with contextlib.suppress(OSError):
        os.remove(path)


def _touch_quietly(path: str) -> None:
    """Mark a file as just used; failing (read-only cache, file gone) only weakens the LRU order."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _read_json(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json(path: str, data: Dict[str, Any]) -> None:
    _atomic_write(path, lambda f: f.write(json.dumps(data, sort_keys=True).encode("utf-8")))


def entry_bytes(family: str) -> int:
    """Disk bytes of one entry of ``family`` (float16 tensors, .npy header and sidecar)."""
    return detect.family(family).entry_bytes


def _layout(family: str):
    """``[(name, shape), ...]`` of a family's bundle in storage order, or None if unknown."""
    try:
        return list(detect.family(family).bundle_shapes.items())
    except ModelError:
        return None


def _bundle(arr: np.ndarray, meta: Dict[str, Any]) -> ImageEmbedding:
    """The float32 bundle of a checked entry: its float16 vector and its sidecar."""
    tensors, at = {}, 0
    for name, shape in _layout(str(meta["family"])) or []:
        n = int(np.prod(shape))
        tensors[name] = arr[at : at + n].astype(np.float32).reshape(shape)
        at += n
    return ImageEmbedding(tensors.pop(IMAGE_EMBEDDINGS), tuple(meta["original_size"]),
                          tuple(meta["input_size"]), meta["family"], tensors)


def make_key(parts: Dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``parts``."""
    blob = json.dumps({"v": FORMAT_VERSION, **parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embeddings on disk under ``directory`` (default :func:`default_cache_dir`).

    Thread-safe within a process; several processes may share a folder (all
    changes are atomic renames and a vanished file is a miss).
    """

    def __init__(self, directory: Optional[str] = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = os.path.abspath(directory or default_cache_dir())
        self.max_bytes = int(max_bytes)
        self._entries = os.path.join(self.directory, _ENTRIES)
        self._lock = threading.RLock()
        self._hashes: Dict[str, str] = {}
        self._memory: OrderedDict[str, Tuple[np.ndarray, Dict[str, Any]]] = OrderedDict()
        self.write_problem = ""  # why the last write failed, for the user ("" once writes work)

    def _paths(self, key: str):
        folder = os.path.join(self._entries, key[:2])
        return os.path.join(folder, key + ".npy"), os.path.join(folder, key + ".json")

    def contains(self, key: str) -> bool:
        """Cheap existence check (the checksum is verified by :meth:`get`)."""
        npy, side = self._paths(key)
        return key in self._memory or (os.path.isfile(side) and os.path.isfile(npy))

    def get(self, key: str) -> Optional[ImageEmbedding]:
        """The cached bundle (float32) or None; a damaged entry is removed and is a miss."""
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                arr, meta = self._memory[key]
                return _bundle(arr, meta)
        npy, side = self._paths(key)
        if not os.path.isfile(side):
            return None
        meta = _read_json(side)
        layout = _layout(str(meta.get("family")))
        try:
            arr = np.load(npy, allow_pickle=False)
            stored = [(str(n), tuple(s)) for n, s in meta.get("tensors", [])]
            ok = (meta.get("version") == FORMAT_VERSION and layout is not None and stored == layout
                  and arr.dtype == np.float16 and arr.ndim == 1
                  and arr.size == sum(int(np.prod(s)) for _, s in layout)
                  and hashlib.sha256(arr.tobytes()).hexdigest() == meta.get("sha256"))
        except (OSError, ValueError, EOFError, TypeError):
            ok = False
        if not ok:
            _LOG.warning("Embedding cache entry %s is damaged; it will be encoded again", key[:12])
            self._remove(key)
            return None
        _touch_quietly(side)  # LRU: the sidecar's mtime is the last use
        return _bundle(arr, meta)

    def put(self, key: str, embedding: ImageEmbedding, meta: Optional[Dict[str, Any]] = None) -> None:
        """Store ``embedding``'s tensors as float16 atomically, then evict beyond ``max_bytes``."""
        layout = _layout(embedding.family)
        tensors = embedding.tensors
        if layout is None or set(tensors) != {n for n, _ in layout}:
            raise ValueError(f"a {embedding.family!r} bundle needs tensors {layout}, got {sorted(tensors)}")
        for name, shape in layout:
            if tuple(tensors[name].shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(tensors[name].shape)}")
        arr = np.concatenate([np.asarray(tensors[n], np.float16).ravel() for n, _ in layout])
        npy, side = self._paths(key)
        sidecar = {
            "version": FORMAT_VERSION, "family": embedding.family, "dtype": "float16",
            "tensors": [[n, list(s)] for n, s in layout], "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
            "original_size": list(embedding.original_size), "input_size": list(embedding.input_size),
            "created": time.time(), "meta": meta or {},
        }
        with self._lock:
            try:
                os.makedirs(os.path.dirname(npy), exist_ok=True)
                _atomic_write(npy, lambda f: np.save(f, arr, allow_pickle=False))
                _write_json(side, sidecar)
            except OSError as exc:
                _remove_quietly(npy)  # no entry without its sidecar
                self._keep_in_memory(key, arr, sidecar, exc)
                return
            self._memory.pop(key, None)
            self.write_problem = ""
            self.evict()

    def _keep_in_memory(self, key: str, arr: np.ndarray, sidecar: Dict[str, Any], exc: OSError) -> None:
        """Hold the entry in memory (the last :data:`MEMORY_ENTRIES`) and tell the user, once per cause."""
        self._memory[key] = (arr, sidecar)
        self._memory.move_to_end(key)
        while len(self._memory) > MEMORY_ENTRIES:
            self._memory.popitem(last=False)
        problem = str(fs.os_error(exc, "write", "embedding cache folder", self.directory, REMEDY))
        if problem != self.write_problem:
            self.write_problem = problem
            _LOG.warning("%s%s. Meanwhile the last %d embeddings are kept in memory.", problem[0].upper(),
                         problem[1:], MEMORY_ENTRIES)

    def _remove(self, key: str) -> None:
        npy, side = self._paths(key)
        _remove_quietly(side)  # sidecar first: the entry stops existing at once
        _remove_quietly(npy)

    def _scan(self):
        """``(mtime, bytes, key)`` of every entry; removes crash leftovers older than an hour."""
        out, now = [], time.time()
        try:
            subs = list(os.scandir(self._entries)) if os.path.isdir(self._entries) else []
        except OSError:  # unreadable folder: nothing that can be used or evicted
            return out
        for sub in subs:
            try:
                files = {e.name: e for e in os.scandir(sub.path)} if sub.is_dir() else {}
            except OSError:
                continue
            for name, e in files.items():
                try:
                    st = e.stat()
                except OSError:
                    continue
                stem, ext = os.path.splitext(name)
                if ext == ".json" and stem + ".npy" in files:
                    try:
                        out.append((st.st_mtime, st.st_size + files[stem + ".npy"].stat().st_size, stem))
                    except OSError:
                        continue
                elif now - st.st_mtime > STALE_SECONDS and (name.startswith(".tmp-") or (
                        ext == ".npy" and stem + ".json" not in files)):
                    _remove_quietly(e.path)
        return out

    def size_bytes(self) -> int:
        """Bytes held by complete entries."""
        with self._lock:
            return sum(s for _, s, _ in self._scan())

    def evict(self) -> None:
        """Delete least recently used entries until the total is at most ``max_bytes``."""
        with self._lock:
            entries = sorted(self._scan())
            total = sum(s for _, s, _ in entries)
            for _, size, key in entries:
                if total <= self.max_bytes:
                    break
                self._remove(key)
                total -= size

    def clear(self) -> None:
        """Delete every cached embedding, encoder hash and timing.

        Raises:
            fs.FileAccessError: some entries could not be deleted (named, with what to do).
        """
        failed = []
        with self._lock:
            shutil.rmtree(self._entries, onerror=lambda _fn, path, info: failed.append((path, info[1])))
            for name in (_ENCODERS, _TIMINGS):
                _remove_quietly(os.path.join(self.directory, name))
            self._hashes.clear()
            self._memory.clear()
        kept = [e for _, e in failed if isinstance(e, OSError) and e.errno != errno.ENOENT]
        if kept:
            raise fs.os_error(kept[0], "clear", "embedding cache folder", self.directory,
                              "give yourself write access to it, or delete it by hand")

    def encoder_hash(self, path: str) -> str:
        """SHA-256 of a model file, computed once per (path, size, mtime) and remembered on disk.

        Raises:
            ModelError: the file is missing, a folder or unreadable (named, with what to do).
        """
        try:
            st = os.stat(path)
            if not os.path.isfile(path):
                raise IsADirectoryError(errno.EISDIR, "Is a directory")
        except OSError as exc:
            raise fs.os_error(exc, "read", "SAM encoder file", os.path.abspath(path), error=ModelError) from None
        memo = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
        if memo in self._hashes:
            return self._hashes[memo]
        memo_file = os.path.join(self.directory, _ENCODERS)
        digest = _read_json(memo_file).get(memo)
        if not isinstance(digest, str):
            h = hashlib.sha256()  # outside the lock: other threads keep using the cache meanwhile
            try:
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 22), b""):
                        h.update(chunk)
            except OSError as exc:
                raise fs.os_error(exc, "read", "SAM encoder file", os.path.abspath(path), error=ModelError) from None
            digest = h.hexdigest()
            with self._lock:
                known = _read_json(memo_file)
                known = dict(list(known.items())[-63:])  # bounded: old model files drop out
                known[memo] = digest
                self._write_quietly(memo_file, known)
        self._hashes[memo] = digest
        return digest

    def _write_quietly(self, path: str, data: Dict[str, Any]) -> None:
        """Write a memo file; failing only costs a re-hash or an estimate next session."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            _write_json(path, data)
        except OSError as exc:
            _LOG.debug("Embedding cache memo %s not written: %s", path, exc)

    def encode_seconds(self, encoder_hash: str) -> Optional[float]:
        """Seconds per crop measured earlier for this encoder (any session), or None."""
        value = _read_json(os.path.join(self.directory, _TIMINGS)).get(encoder_hash)
        return float(value) if isinstance(value, (int, float)) else None

    def record_encode_seconds(self, encoder_hash: str, seconds: float) -> None:
        """Fold one measured encode time into the encoder's running average."""
        with self._lock:
            path = os.path.join(self.directory, _TIMINGS)
            known = _read_json(path)
            old = known.get(encoder_hash)
            known[encoder_hash] = seconds if not isinstance(old, (int, float)) else 0.7 * old + 0.3 * seconds
            self._write_quietly(path, known)

