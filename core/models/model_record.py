"""The user's model record, in the QGIS profile: checksums of installed downloads, and user-added pairs.

Qt-free. A catalogue download checked against the SHA256 its host served has
that checksum recorded here, so a later change to the file is noticed. Models
the user adds (a fine-tuned SAM exported by samexporter, for example) are
checked once with the engine's signature check and kept here under a name.
Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional

from .. import fs_checks as fs
from ..errors import ModelError
from .catalogue import family_title
from .model_manager import HashCache, check_file, runs

log = logging.getLogger("ai_segmentation")
RECORD_VERSION = 1
RECORD_NAME = "user_models.json"
INDEX_NAME = "model_index.json"


def profile_paths(profile_dir: os.PathLike) -> Dict[str, Path]:
    """Where the plugin keeps its model data in a QGIS profile folder.

    Returns:
        ``models``: default models folder; ``record``: this record; ``index``: the checksum cache.
    """
    base = Path(profile_dir) / "ai_segmentation"
    return {"models": base / "models", "record": base / RECORD_NAME, "index": base / INDEX_NAME}


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class RecordedFile:
    """A model file and the SHA256 it had when it was installed or added.

    Attributes:
        path: absolute path.
        sha256: hex digest.
        checked_by: ``"pinned"`` (catalogue checksum), ``"host"`` (the host's checksum) or ``"user"`` (added).
        url: where it was downloaded from ("" for added files).
    """

    path: str
    sha256: str
    checked_by: str
    url: str = ""


@dataclass(frozen=True)
class CustomModel:
    """An encoder + decoder pair the user added under a name."""

    name: str
    family: str
    encoder: RecordedFile
    decoder: RecordedFile
    added: str


class UserRecord:
    """The record file; an unreadable one is set aside (``.bad``) and started afresh, with a warning."""

    def __init__(self, path: os.PathLike) -> None:
        self.path = Path(path)
        self.installed: Dict[str, RecordedFile] = {}
        self.custom: Dict[str, CustomModel] = {}
        if self.path.is_file():
            try:
                self._load(json.loads(self.path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("model record '%s' is unreadable (%s); it was renamed to .bad", self.path, exc)
                self.installed, self.custom = {}, {}
                os.replace(self.path, self.path.with_name(self.path.name + ".bad"))

    def _load(self, raw: dict) -> None:
        if raw.get("version") != RECORD_VERSION:
            raise ValueError(f"unknown version {raw.get('version')!r}")
        self.installed = {k: RecordedFile(**v) for k, v in raw.get("installed", {}).items()}
        for name, item in raw.get("custom", {}).items():
            enc, dec = RecordedFile(**item.pop("encoder")), RecordedFile(**item.pop("decoder"))
            self.custom[name] = CustomModel(encoder=enc, decoder=dec, **item)

    def save(self) -> None:
        """Write the record atomically; :class:`ModelError` in the plugin's words if it cannot be."""
        data = {
            "version": RECORD_VERSION,
            "installed": {k: asdict(v) for k, v in self.installed.items()},
            "custom": {k: asdict(v) for k, v in self.custom.items()},
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:  # read-only profile, full disk: the old record stays as it was
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise fs.os_error(exc, "write", "list of installed models", str(self.path),
                              "make the QGIS profile folder writable, or free some space, and try again",
                              ModelError) from None

    def record_install(self, files: Iterable[RecordedFile]) -> None:
        for f in files:
            self.installed[f.path] = f

    def recorded_sha256(self, path: os.PathLike) -> Optional[str]:
        item = self.installed.get(os.path.abspath(os.fspath(path)))
        return item.sha256 if item else None

    def known(self) -> Dict[str, str]:
        """Recorded SHA256 -> file name, for "checksum verified" in file lists."""
        known = {f.sha256: os.path.basename(f.path) for f in self.installed.values()}
        for m in self.custom.values():
            known.update({m.encoder.sha256: m.name, m.decoder.sha256: m.name})
        return known

    def files(self) -> Iterable[str]:
        """Every file the record knows (discovery checks them wherever they are)."""
        yield from self.installed
        for m in self.custom.values():
            yield from (m.encoder.path, m.decoder.path)

    def remove_custom(self, name: str) -> None:
        if name not in self.custom:
            raise ModelError(f"no model named '{name}' was added")
        del self.custom[name]


def check_custom(
    name: str, encoder: os.PathLike, decoder: os.PathLike, cache: HashCache,
    cancelled: Optional[Callable[[], bool]] = None,
) -> CustomModel:
    """Check a user-added pair with the engine's signature check; raises :class:`ModelError` saying why not.

    Both files must be models the engine runs, the encoder an encoder and the
    decoder a decoder, of the same family. Their SHA256 is recorded.
    """
    name = name.strip()
    if not name:
        raise ModelError("give the model a name, e.g. 'SAM ViT-B fine-tuned on roofs'")
    files = {}
    for role, path in (("encoder", encoder), ("decoder", decoder)):
        path = os.path.abspath(os.fspath(path))
        if not os.path.isfile(path):
            raise ModelError(f"the {role} file '{path}' does not exist: choose the {role} .onnx file")
        if not path.lower().endswith(".onnx"):
            raise ModelError(f"'{os.path.basename(path)}' is not an ONNX file: choose the {role} .onnx file "
                             "(a PyTorch checkpoint must be exported first: 'Export from checkpoint…')")
        item = check_file(path, cache, cancelled)
        if item is None:
            raise ModelError("adding the model was cancelled")
        if item["error"]:
            raise ModelError(f"'{path}' cannot be used as the {role}: {item['error']}")
        if item["role"] != role:
            raise ModelError(f"'{os.path.basename(path)}' is a {family_title(item['family'])} {item['role']}, "
                             f"not the {role}: choose the {role} file for the {role}")
        files[role] = (path, item)
    families = {item["family"] for _, item in files.values()}
    if len(families) != 1:
        raise ModelError(f"the encoder is a {family_title(files['encoder'][1]['family'])} model and the decoder "
                         f"a {family_title(files['decoder'][1]['family'])} model: both must come from one export")
    family = families.pop()
    if not runs(family):
        raise ModelError(f"'{name}' is a {family_title(family)} model, which this version of the plugin cannot run")
    cache.save()
    rec = {r: RecordedFile(p, item["sha256"], "user") for r, (p, item) in files.items()}
    return CustomModel(name, family, rec["encoder"], rec["decoder"], _now())
