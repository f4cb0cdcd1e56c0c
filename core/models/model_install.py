"""Installing a downloaded catalogue model: staging, checks, and the final move into the models folder.

Qt-free (the downloads themselves are in :mod:`.model_download`). Files are
downloaded into a hidden staging folder, ``<models>/.download-<id>/``, which
discovery never lists. Only when every file has passed its checksum and the
engine's signature check says it is the expected family and role does the
folder become ``<models>/<id>/`` (one rename) and its checksums go into the
user's record. A wrong file deletes the staging folder, so nothing is left
half-installed; an interrupted download keeps it, to resume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Dict, Optional

from .. import fs_checks as fs
from ..errors import ModelError
from .catalogue import CatalogueFile, CatalogueModel, family_title
from .model_manager import HashCache, probe, sha256_file
from .model_pairs import ModelPair, install_dir
from .model_record import RecordedFile, UserRecord

log = logging.getLogger("ai_segmentation")
MANIFEST = "verified.json"  # in the staging folder: name -> {sha256, checked_by, url}


def staging_dir(models_dir: os.PathLike, model: CatalogueModel) -> Path:
    return Path(models_dir) / f".download-{model.id}"


def _manifest(staging: Path) -> Dict[str, dict]:
    try:
        return json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def mark_verified(staging: Path, f: CatalogueFile, sha256: str, checked_by: str) -> None:
    """Note that ``f`` was downloaded into ``staging`` and passed its checksum (atomic write)."""
    data = _manifest(staging)
    data[f.name] = {"sha256": sha256, "checked_by": checked_by, "url": f.url}
    tmp = staging / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, staging / MANIFEST)


def already_verified(staging: Path, f: CatalogueFile) -> bool:
    """True when a previous attempt left ``f`` complete and checked in ``staging`` (it is hashed again)."""
    item = _manifest(staging).get(f.name)
    path = staging / f.name
    if not item or not path.is_file() or item.get("url") != f.url:
        return False
    if f.sha256 not in (None, item.get("sha256")) or sha256_file(path) != item.get("sha256"):
        path.unlink()  # changed since: download it again
        return False
    return True


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def _check_signature(model: CatalogueModel, f: CatalogueFile, path: Path) -> None:
    """The engine's signature check must say ``f`` is ``model``'s family and ``f.role``."""
    why = "The download was deleted; nothing was installed."
    try:
        family, role = probe(path)
    except ModelError as exc:
        raise ModelError(f"{f.name}, downloaded for {model.title}, is not a model the plugin can run: {exc} "
                         f"{why}") from None
    if family != model.family:
        raise ModelError(f"{f.name} is a {family_title(family)} {role}, but {model.title} belongs to the "
                         f"{family_title(model.family)} family: the file is not the one the catalogue "
                         f"describes. {why}")
    if role != f.role:
        raise ModelError(f"{f.name} is a {family_title(family)} {role}, but the catalogue lists it as "
                         f"{model.title}'s {f.role}. {why}")


def finalize(model: CatalogueModel, models_dir: os.PathLike, record: UserRecord,
             cache_path: Optional[os.PathLike] = None) -> ModelPair:
    """Check the staged files of ``model`` and move them into place; returns the installed pair.

    Raises:
        ModelError: a file is missing from staging (nothing changes) or is not the expected
            family and role (staging is deleted); the message says which and why.
    """
    staging = staging_dir(models_dir, model)
    manifest = _manifest(staging)
    for f in model.files:
        if f.name not in manifest or not (staging / f.name).is_file():
            raise ModelError(f"{model.title}: {f.name} has not been downloaded and checked yet; "
                             "press Download again")
    try:
        for f in model.files:
            _check_signature(model, f, staging / f.name)
    except ModelError:
        discard(staging)
        raise
    target = install_dir(models_dir, model)
    old = Path(models_dir) / f".old-{model.id}"
    try:
        discard(old)
        if target.exists():
            os.replace(target, old)  # a previous, damaged copy
        os.replace(staging, target)
    except OSError as exc:  # the models folder turned read-only: staging is kept for another try
        if old.exists() and not target.exists():
            with contextlib.suppress(OSError):
                os.replace(old, target)
        raise fs.os_error(exc, "write", "models folder", str(models_dir),
                          f"make it writable, or choose another models folder, then press Download again "
                          f"({model.title} is downloaded and checked)", ModelError) from None
    with contextlib.suppress(OSError):  # only the staging manifest: harmless if it stays
        (target / MANIFEST).unlink()
    discard(old)
    files = [RecordedFile(os.path.abspath(target / f.name), manifest[f.name]["sha256"],
                          manifest[f.name]["checked_by"], f.url) for f in model.files]
    cache = HashCache(cache_path)
    for f, rec in zip(model.files, files):
        cache.put(rec.path, sha256=rec.sha256, role=f.role, family=model.family, error=None)
    cache.save()
    record.record_install(files)
    record.save()
    log.info("installed %s in %s", model.title, target)
    paths = {f.role: rec.path for f, rec in zip(model.files, files)}
    return ModelPair(f"catalogue:{model.id}", model.title, model.family, paths["encoder"], paths["decoder"],
                     "catalogue")
