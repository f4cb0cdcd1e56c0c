"""Catalogues with a "sam" pair made of the tiny test model (the shipped models are other families)."""

from __future__ import annotations

import copy
import hashlib
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional

from core.models import catalogue
from core.models.model_pairs import install_dir
from core.models.model_record import RecordedFile, UserRecord

SHIPPED = catalogue.load(catalogue.DATA_FILE)
REV = "0" * 40
TINY = {"encoder": "encoder_preproc", "decoder": "decoder"}  # role -> tiny_paths key


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sam_catalogue(tiny_paths, base_url: str = "https://example.org", pinned: bool = True, family: str = "sam",
                  served: Optional[Dict[str, Path]] = None) -> catalogue.Catalogue:
    """The shipped catalogue plus a model "tiny" of ``family`` whose files are ``tiny_<role>.onnx``.

    Args:
        base_url: where the files are served (``<base_url>/repo/resolve/<rev>/<name>``); the data file
            itself must say https, so a local http server's URL is put in after checking.
        pinned: list their SHA256 (else they are checked against the host's).
        served: role -> the file whose SHA256 is pinned (default: the tiny model's own files).
    """
    data = copy.deepcopy(SHIPPED)
    files = []
    for role, key in TINY.items():
        name = f"tiny_{role}.onnx"
        source = (served or {}).get(role, tiny_paths[key])
        files.append({"role": role, "name": name, "url": f"https://example.org/repo/resolve/{REV}/{name}",
                      "size_mb": 1.0, "verify": "pinned" if pinned else "host",
                      "sha256": sha(source) if pinned else None})
    data["models"] = [dict(data["models"][0], id="tiny", title="Tiny SAM", family=family,
                           files=files)] + data["models"]
    cat = catalogue.parse(data, "test")
    tiny = cat.models[0]
    local = tuple(replace(f, url=f.url.replace("https://example.org", base_url)) for f in tiny.files)
    return replace(cat, models=(replace(tiny, files=local), *cat.models[1:]))


def install_tiny(tiny_paths, models_dir: Path, record: UserRecord, cat) -> Path:
    """Put the tiny pair where an install would, with its checksums recorded."""
    model = cat.model("tiny")
    folder = install_dir(models_dir, model)
    folder.mkdir(parents=True)
    for role, key in TINY.items():
        dest = folder / model.file(role).name
        shutil.copy(tiny_paths[key], dest)
        record.record_install([RecordedFile(str(dest), sha(dest), "pinned", model.file(role).url)])
    return folder
