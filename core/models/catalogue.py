"""The model catalogue: ready-made ONNX pairs and SAM checkpoints, read from ``core/models/data/models.json``.

Qt-free. The data file holds every URL and checksum (they are data, not code);
this module checks it strictly, so a broken entry is refused with a message
naming it rather than offered half-described.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..errors import ModelError
from ..families import detect

DATA_FILE = Path(__file__).parent / "data" / "models.json"
SUMS_SUFFIX = ".sha256"  # checksums live beside the catalogue, in sha256sum's format: "<hex>  <id>/<file>"
FORMAT = 1
FAMILIES = tuple(f.name for f in detect.FAMILIES)  # SAM ViT-B/L/H and MobileSAM share one signature: "sam"
ROLES = ("encoder", "decoder")
SPEED_CLASSES = ("fast", "medium", "slow")
VERIFY_MODES = ("pinned", "host")  # see the data file's "verification" section
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ID = re.compile(r"[a-z0-9_]+")
_PINNED = re.compile(r"/([0-9a-f]{40})/")  # a revision in a URL path: a full commit, never a branch


def family_title(family: Optional[str]) -> str:
    """``"sam2"`` -> ``"SAM 2"``, for messages."""
    try:
        return detect.title(family or "")
    except ModelError:  # a family named by a newer plugin version's records
        return family or "unknown"


@dataclass(frozen=True)
class CatalogueFile:
    """One file of a ready-made model.

    Attributes:
        role: ``"encoder"`` or ``"decoder"``.
        name: file name it is saved under.
        url: https URL pinned to the catalogue revision.
        size_mb: size in MB (10^6 bytes) as the host shows it, for display.
        verify: ``"pinned"`` (``sha256`` below) or ``"host"`` (the SHA256 the host serves).
        sha256: expected hex digest for ``"pinned"``; None for ``"host"``.
    """

    role: str
    name: str
    url: str
    size_mb: float
    verify: str
    sha256: Optional[str]


@dataclass(frozen=True)
class CatalogueModel:
    """A ready-made encoder + decoder pair.

    Attributes:
        id: folder name of the installed pair (``<models folder>/<id>/``).
        family: ``"sam"``, ``"sam2"`` or ``"efficientsam"``: what the engine's signature check must say.
        speed_class: ``"fast"``, ``"medium"`` or ``"slow"`` on a CPU.
        encoder_s_fp32, encoder_s_int8: measured encoder seconds per 1024 px crop (2 cores).
        quality: one-line quality note.
    """

    id: str
    title: str
    family: str
    publisher: str
    licence: str
    revision: str
    speed_class: str
    encoder_s_fp32: float
    encoder_s_int8: float
    quality: str
    files: Tuple[CatalogueFile, ...]
    sources: Tuple[str, ...]

    def file(self, role: str) -> CatalogueFile:
        return next(f for f in self.files if f.role == role)

    @property
    def size_mb(self) -> float:
        return sum(f.size_mb for f in self.files)

    @property
    def speed_text(self) -> str:
        """E.g. "fast: 2.2 s per crop" (encoder, 1024 px crop, 2 CPU cores)."""
        return f"{self.speed_class}: {self.encoder_s_fp32:g} s per crop"


@dataclass(frozen=True)
class Checkpoint:
    """An official PyTorch checkpoint for the advanced export path; ``key`` is samexporter's ``--model-type``."""

    key: str
    title: str
    name: str
    url: str
    sha256: str


@dataclass(frozen=True)
class Catalogue:
    """The whole data file; ``models`` in the file's order."""

    models: Tuple[CatalogueModel, ...]
    checkpoints: Dict[str, Checkpoint]
    path: str

    def model(self, model_id: str) -> CatalogueModel:
        for m in self.models:
            if m.id == model_id:
                return m
        raise ModelError(f"'{model_id}' is not in the model catalogue {self.path}")

    def recommended(self) -> Tuple[CatalogueModel, ...]:
        """Models for CPU users, fastest encoder first (the first is the default recommendation)."""
        return tuple(sorted(self.models, key=lambda m: (m.encoder_s_fp32, m.size_mb)))

    def known_sha256(self) -> Dict[str, str]:
        """Published checksums -> what they belong to (for "checksum verified" in file lists)."""
        known = {c.sha256: c.title for c in self.checkpoints.values()}
        known.update({f.sha256: m.title for m in self.models for f in m.files if f.sha256})
        return known


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise ModelError(f"the model catalogue is damaged: {where}: {what}. Reinstall the plugin.")


def _text(item: dict, key: str, where: str) -> str:
    value = item.get(key)
    _need(isinstance(value, str) and bool(value.strip()), where, f"'{key}' must be a non-empty text")
    return value


def _number(item: dict, key: str, where: str) -> float:
    value = item.get(key)
    _need(isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0, where,
          f"'{key}' must be a positive number")
    return float(value)


def _file(raw: dict, where: str) -> CatalogueFile:
    _need(isinstance(raw, dict), where, "each file must be an object")
    role, name, url = _text(raw, "role", where), _text(raw, "name", where), _text(raw, "url", where)
    where = f"{where}, file '{name}'"
    _need(role in ROLES, where, f"role must be one of {', '.join(ROLES)}")
    _need("/" not in name and "\\" not in name and not name.startswith("."), where, "a plain file name")
    _need(url.startswith("https://"), where, "the URL must be https")
    _need(bool(_PINNED.search(url)), where, "the URL must be pinned to a full 40-digit commit")
    verify, sha = raw.get("verify"), raw.get("sha256")
    _need(verify in VERIFY_MODES, where, f"'verify' must be one of {', '.join(VERIFY_MODES)}")
    if verify == "pinned":
        _need(isinstance(sha, str) and bool(_SHA256.fullmatch(sha)), where, "a pinned file needs a hex SHA256")
    else:
        _need(sha is None, where, "a file checked against the host's SHA256 must not list one")
    return CatalogueFile(role, name, url, _number(raw, "size_mb", where), verify, sha)


def _model(raw: dict, index: int) -> CatalogueModel:
    _need(isinstance(raw, dict), f"model #{index + 1}", "must be an object")
    model_id = _text(raw, "id", f"model #{index + 1}")
    where = f"model '{model_id}'"
    _need(bool(_ID.fullmatch(model_id)), where, "the id must be lower-case letters, digits and _")
    family = _text(raw, "family", where)
    _need(family in FAMILIES, where, f"family must be one of {', '.join(FAMILIES)}")
    speed = raw.get("speed")
    _need(isinstance(speed, dict), where, "'speed' must be an object")
    _need(speed.get("class") in SPEED_CLASSES, where, f"speed class must be one of {', '.join(SPEED_CLASSES)}")
    files = raw.get("files")
    _need(isinstance(files, list), where, "'files' must be a list")
    parsed = tuple(_file(f, where) for f in files)
    revisions = {_PINNED.search(f.url).group(1) for f in parsed}
    _need(len(revisions) == 1, where, "both files must come from the same revision")
    revision = revisions.pop()
    _need(sorted(f.role for f in parsed) == sorted(ROLES), where, "needs exactly one encoder and one decoder")
    _need(len({f.name for f in parsed}) == len(parsed), where, "file names must differ")
    sources = raw.get("sources")
    _need(isinstance(sources, list) and bool(sources) and all(isinstance(s, str) for s in sources), where,
          "'sources' must list where each fact was checked")
    return CatalogueModel(
        model_id, _text(raw, "title", where), family, _text(raw, "publisher", where),
        _text(raw, "licence", where), revision, speed["class"], _number(speed, "encoder_s_fp32", where),
        _number(speed, "encoder_s_int8", where), _text(raw, "quality", where), parsed, tuple(sources),
    )


def _checkpoint(raw: dict) -> Checkpoint:
    _need(isinstance(raw, dict), "checkpoints", "each checkpoint must be an object")
    key = _text(raw, "key", "checkpoint")
    where = f"checkpoint '{key}'"
    url, sha = _text(raw, "url", where), raw.get("sha256")
    _need(url.startswith("https://"), where, "the URL must be https")
    _need(isinstance(sha, str) and bool(_SHA256.fullmatch(sha)), where, "needs a hex SHA256")
    return Checkpoint(key, _text(raw, "title", where), _text(raw, "name", where), url, sha)


def parse(data: object, path: str = "<data>") -> Catalogue:
    """Check and convert the decoded JSON of a catalogue file; raises :class:`ModelError` naming the fault."""
    _need(isinstance(data, dict), path, "the file must hold a JSON object")
    _need(data.get("format") == FORMAT, path, f"unknown format {data.get('format')!r}, expected {FORMAT}")
    models, checkpoints = data.get("models"), data.get("checkpoints", [])
    _need(isinstance(models, list) and isinstance(checkpoints, list), path, "'models' and 'checkpoints' are lists")
    parsed = tuple(_model(m, i) for i, m in enumerate(models))
    _need(len({m.id for m in parsed}) == len(parsed), path, "model ids must differ")
    ckpts = {c.key: c for c in (_checkpoint(c) for c in checkpoints)}
    return Catalogue(parsed, ckpts, path)


def read_sums(path: Path) -> Dict[str, str]:
    """``{"<model id>/<file name>": sha256}`` from a sha256sum-format file; raises :class:`ModelError`."""
    sums: Dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"the model checksums {path} could not be read ({exc}). Reinstall the plugin.") from None
    for number, line in enumerate(lines, 1):
        digest, _, name = line.partition("  ")
        _need(bool(_SHA256.fullmatch(digest)) and bool(name), f"{path}, line {number}",
              "expected '<64 hex digits>  <model id>/<file name>'")
        sums[name] = digest
    return sums


def _with_sums(data: object, sums: Dict[str, str]) -> object:
    """The decoded catalogue with each pinned file's and checkpoint's SHA256 filled in from ``sums``."""
    if not isinstance(data, dict):
        return data
    for model in data.get("models") or []:
        for f in (model.get("files") or []) if isinstance(model, dict) else []:
            if isinstance(f, dict) and f.get("verify") == "pinned":
                f.setdefault("sha256", sums.get(f"{model.get('id')}/{f.get('name')}"))
    for c in data.get("checkpoints") or []:
        if isinstance(c, dict):
            c.setdefault("sha256", sums.get(f"checkpoints/{c.get('name')}"))
    return data


def load(path: Path) -> object:
    """The decoded catalogue file, with the SHA256s of the checksum file beside it filled in (unchecked)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"the model catalogue {path} could not be read ({exc}). Reinstall the plugin.") from None
    sums_path = path.with_suffix(SUMS_SUFFIX)
    return _with_sums(data, read_sums(sums_path) if sums_path.exists() else {})


def read(path: Path) -> Catalogue:
    """Read and check a catalogue file and the checksum file beside it."""
    return parse(load(path), str(path))


@lru_cache(maxsize=1)
def shipped() -> Catalogue:
    """The catalogue shipped with the plugin."""
    return read(DATA_FILE)
