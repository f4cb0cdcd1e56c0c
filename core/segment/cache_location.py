"""Where the embedding cache lives: the chosen folder, checked, or a temporary one for the session.

A cache folder that cannot be created or written (``XDG_CACHE_HOME`` pointing at a file, a
read-only disk, a folder of another user) must not stop segmentation: embeddings then go to a
temporary folder, deleted when QGIS exits, and the user is told once which folder failed, why,
and where to choose another. Encoding into the cache ahead of time (the Processing "encode"
algorithm) is pointless without a lasting cache, so it asks for no fallback and fails instead.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from typing import Dict, Optional, Tuple

from .. import fs_checks as fs
from .embedding_cache import REMEDY, EmbeddingCache, default_cache_dir

_FALLBACKS: Dict[str, str] = {}  # unusable folder -> the temporary folder used instead this session
_LOCK = threading.Lock()


class CacheLocationError(fs.FileAccessError):
    """The embedding cache folder cannot be created or written."""


def cache_folder(directory: Optional[str]) -> str:
    """The folder a cache setting stands for (empty: the per-user cache folder), absolute."""
    return os.path.abspath(os.path.expanduser(directory or default_cache_dir()))


def check_cache_folder(directory: Optional[str]) -> str:
    """The cache folder, created if needed, after a real write test; raises :class:`CacheLocationError`."""
    return fs.check_folder(cache_folder(directory), "embedding cache folder", create=True,
                           error=CacheLocationError, remedy=REMEDY)


def _temporary_folder(wanted: str) -> str:
    """The session's stand-in for ``wanted``: made once, removed when the process exits."""
    with _LOCK:
        folder = _FALLBACKS.get(wanted)
        if folder is None or not os.path.isdir(folder):
            folder = tempfile.mkdtemp(prefix="qgis-ai-segmentation-cache-")
            atexit.register(shutil.rmtree, folder, True)
            _FALLBACKS[wanted] = folder
        return folder


def open_cache(directory: Optional[str], max_bytes: int, fallback: bool = True) -> Tuple[EmbeddingCache, str]:
    """``(cache, warning)``: the cache in ``directory`` (empty: the per-user folder) and "", or,
    when that folder cannot be used and ``fallback`` is True, a cache in a temporary folder and a
    warning for the user naming both folders and what to do.

    Raises:
        CacheLocationError: the folder cannot be used and ``fallback`` is False, or not even a
            temporary folder can be made.
    """
    try:
        return EmbeddingCache(check_cache_folder(directory), max_bytes), ""
    except CacheLocationError as exc:
        if not fallback:
            raise
        problem = exc
    try:
        folder = _temporary_folder(cache_folder(directory))
    except OSError as exc:
        raise CacheLocationError(f"{problem}; no temporary folder could be made either "
                                 f"({fs.reason(exc, tempfile.gettempdir())[1]})", problem.path,
                                 problem.kind) from None
    warning = (f"{str(problem)[0].upper()}{str(problem)[1:]}. Until then, embeddings are kept in the temporary "
               f"folder '{folder}' for this session only.")
    return EmbeddingCache(folder, max_bytes), warning

