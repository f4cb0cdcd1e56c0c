"""Known SAM models, discovery and validation of model files, checksums, export commands.

Qt-free. Validation is the engine's own (:class:`SamEncoder` / :class:`SamDecoder`
signature checks), run once per file: results and SHA256 are cached in a JSON
file keyed by path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .dependency_manager import command_text, run_streaming
from .errors import ModelError
from .sam_decoder import SamDecoder
from .sam_encoder import SamEncoder

log = logging.getLogger("ai_segmentation")

CACHE_VERSION = 1
_CHUNK = 1 << 20  # bytes read at a time when hashing


@dataclass(frozen=True)
class ModelFile:
    """One file of a model.

    Attributes:
        role: ``"checkpoint"`` (PyTorch ``.pth``), ``"encoder"`` or ``"decoder"`` (ONNX).
        precision: ``"fp32"`` or ``"int8"``.
        filename: name the plugin gives the file.
        url: where to download it; ``None`` where nobody publishes it.
        sha256: expected checksum; ``None`` when unknown ("unverified" in the UI).
        how: how to get the file when there is no URL.
    """

    role: str
    precision: str
    filename: str
    url: Optional[str] = None
    sha256: Optional[str] = None
    how: str = ""

    @property
    def downloadable(self) -> bool:
        """Only files with both a URL and a known checksum are offered for download."""
        return bool(self.url and self.sha256)


@dataclass(frozen=True)
class ModelSpec:
    """A SAM variant: ``key`` is samexporter's ``--model-type``."""

    key: str
    title: str
    checkpoint: ModelFile
    files: Tuple[ModelFile, ...]


def _spec(key: str, title: str, ckpt_name: str, url: str, sha256: str) -> ModelSpec:
    export = f"export from {ckpt_name} with samexporter (setup dialog, 'Export from checkpoint')"
    return ModelSpec(
        key,
        title,
        ModelFile("checkpoint", "fp32", ckpt_name, url, sha256),
        (
            ModelFile("encoder", "fp32", f"{key}.encoder.preproc.onnx", how=export),
            ModelFile("encoder", "int8", f"{key}.encoder.preproc.int8.onnx",
                      how="built from the fp32 encoder (setup dialog, 'Build fast int8 encoder')"),
            ModelFile("decoder", "fp32", f"{key}.decoder.onnx", how=export),
            ModelFile("decoder", "int8", f"{key}.decoder.int8.onnx",
                      how="samexporter.export_decoder --quantize-out (optional: the decoder is fast)"),
        ),
    )


# Meta publishes the URLs but no checksums: these SHA256 are the ones recorded, identically,
# by many independent public projects that verify their downloads of these exact URLs.
REGISTRY: Dict[str, ModelSpec] = {
    s.key: s
    for s in (
        _spec("vit_b", "SAM ViT-B (375 MB, fastest SAM)", "sam_vit_b_01ec64.pth",
              "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
              "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
        _spec("vit_l", "SAM ViT-L (1.2 GB)", "sam_vit_l_0b3195.pth",
              "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
              "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
        _spec("vit_h", "SAM ViT-H (2.4 GB, best quality, slowest)", "sam_vit_h_4b8939.pth",
              "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
              "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
        _spec("mobile", "MobileSAM (39 MB; export needs the mobile_sam package)", "mobile_sam.pt",
              "https://github.com/ChaoningZhang/MobileSAM/raw/f706ad9c4eb7f219c00d9050e46328518ffb65d2"
              "/weights/mobile_sam.pt",
              "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"),
    )
}


def guess_model_type(path: os.PathLike) -> Optional[str]:
    """Registry key from a file name (``sam_vit_b_01ec64.pth`` -> ``"vit_b"``), or None."""
    name = os.path.basename(os.fspath(path)).lower()
    m = re.search(r"vit[_-]?([blh])(?![a-z])", name)
    if m:
        return f"vit_{m.group(1)}"
    return "mobile" if "mobile" in name else None


def precision_of(path: os.PathLike) -> str:
    """``"int8"`` for quantised files (by name, as written by this plugin and samexporter)."""
    name = os.path.basename(os.fspath(path)).lower()
    return "int8" if re.search(r"int8|quant|uint8", name) else "fp32"


# ---------------------------------------------------------------- checksums


def sha256_file(path: os.PathLike, cancelled: Optional[Callable[[], bool]] = None) -> Optional[str]:
    """Hex SHA256 of a file, read 1 MiB at a time; None if ``cancelled()`` turned True."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
            if cancelled and cancelled():
                return None
    return digest.hexdigest()


# ---------------------------------------------------------------- discovery


@dataclass(frozen=True)
class ModelEntry:
    """A model file found on disk.

    Attributes:
        path: absolute path.
        size: bytes.
        sha256: hex digest of the file.
        role: ``"encoder"``, ``"decoder"`` or ``"checkpoint"``; None when invalid.
        precision: ``"fp32"`` or ``"int8"``.
        model_type: registry key guessed from the name, or None.
        preprocess_in_graph: encoder exported with ``--use-preprocess``.
        error: why the file is unusable; None when valid.
        verified: True when the SHA256 matches a registry entry.
    """

    path: str
    size: int
    sha256: Optional[str]
    role: Optional[str]
    precision: str
    model_type: Optional[str]
    preprocess_in_graph: bool = False
    error: Optional[str] = None
    verified: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def family(self) -> str:
        """Encoders and decoders of one family belong together (model type, else name prefix)."""
        name = os.path.basename(self.path).lower()
        return self.model_type or re.split(r"[._-](encoder|decoder)", name)[0]


def validate_onnx(path: str) -> Tuple[Optional[str], bool, Optional[str]]:
    """``(role, preprocess_in_graph, error)`` of an ONNX file, using the engine's validation.

    The role named in the file name is tried first, so a decoder is not loaded
    as an encoder needlessly; the error reported is that role's.
    """
    name = os.path.basename(path).lower()
    order = ("decoder", "encoder") if "decoder" in name else ("encoder", "decoder")
    errors: List[str] = []
    for role in order:
        try:
            if role == "encoder":
                return role, SamEncoder(path).preprocess_in_graph, None
            SamDecoder(path)
            return role, False, None
        except ModelError as exc:  # MissingDependencyError is not a ModelError: it propagates
            errors.append(str(exc))
    return None, False, errors[0]


class HashCache:
    """JSON cache of checksums and validation results, keyed by path, size and mtime."""

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
        if item and (item.get("size"), item.get("mtime_ns")) == self._stamp(path):
            return item
        return None

    def put(self, path: str, **values: object) -> None:
        size, mtime = self._stamp(path)
        self._data[path] = dict(values, size=size, mtime_ns=mtime)

    def save(self) -> None:
        if not self.path:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "files": self._data}, indent=1), "utf-8")
        os.replace(tmp, self.path)


def _known_hashes() -> set:
    return {f.sha256 for s in REGISTRY.values() for f in (s.checkpoint, *s.files) if f.sha256}


def model_files(folders: Iterable[os.PathLike]) -> List[str]:
    """Absolute paths of ``*.onnx``, ``*.pth`` and ``*.pt`` files directly in ``folders``."""
    seen: Dict[str, None] = {}
    for folder in folders:
        if folder and os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                path = os.path.abspath(os.path.join(folder, name))
                # hidden names are temporary files of exports and quantisations in progress
                wanted = name.lower().endswith((".onnx", ".pth", ".pt")) and not name.startswith(".")
                if wanted and os.path.isfile(path):
                    seen.setdefault(path)
    return list(seen)


def discover(
    folders: Sequence[os.PathLike],
    cache_path: Optional[os.PathLike] = None,
    on_file: Optional[Callable[[int, int, str], None]] = None,
    cancelled: Optional[Callable[[], bool]] = None,
) -> List[ModelEntry]:
    """Find, hash and validate model files in ``folders`` (e.g. the plugin's and the user's).

    Args:
        folders: folders searched (not recursively); missing ones are skipped.
        cache_path: JSON cache; results for unchanged files are reused.
        on_file: ``on_file(index, count, path)`` before each file, for progress.
        cancelled: stops early (returning what was done) when it turns True.
    """
    cache = HashCache(cache_path)
    known = _known_hashes()
    paths = model_files(folders)
    entries = []
    for i, path in enumerate(paths):
        if cancelled and cancelled():
            break
        if on_file:
            on_file(i, len(paths), path)
        try:
            item = cache.get(path)
            if item is None:
                digest = sha256_file(path, cancelled)
                if digest is None:
                    break
                if path.lower().endswith(".onnx"):
                    role, preprocess, error = validate_onnx(path)
                else:
                    role, preprocess, error = "checkpoint", False, None
                cache.put(path, sha256=digest, role=role, preprocess=preprocess, error=error)
                item = cache.get(path)
        except OSError as exc:  # removed or unreadable while we looked
            log.warning("skipping model file '%s': %s", path, exc)
            continue
        assert item is not None
        entries.append(ModelEntry(
            path=path, size=item["size"], sha256=item["sha256"], role=item["role"],
            precision=precision_of(path), model_type=guess_model_type(path),
            preprocess_in_graph=bool(item["preprocess"]), error=item["error"],
            verified=item["sha256"] in known,
        ))
    cache.save()
    return entries


def best_pair(entries: Sequence[ModelEntry], prefer_int8: bool = True) -> Optional[Tuple[str, str]]:
    """``(encoder, decoder)`` paths of one family, int8 encoder first if asked; None if no pair."""
    encoders = [e for e in entries if e.ok and e.role == "encoder"]
    decoders = [e for e in entries if e.ok and e.role == "decoder"]
    rank = {"int8": 0, "fp32": 1} if prefer_int8 else {"fp32": 0, "int8": 1}
    for enc in sorted(encoders, key=lambda e: rank[e.precision]):
        matches = sorted((d for d in decoders if d.family == enc.family), key=lambda d: d.precision != "fp32")
        if matches:
            return enc.path, matches[0].path
    if len(decoders) == 1 and len({e.family for e in encoders}) == 1:  # one of each, names unrelated
        enc = sorted(encoders, key=lambda e: rank[e.precision])[0]
        return enc.path, decoders[0].path
    return None


def fp32_encoder(entries: Sequence[ModelEntry], preferred: Optional[str] = None) -> Optional[ModelEntry]:
    """The valid fp32 encoder to quantise: ``preferred`` (a path) if it is one, else the first."""
    encoders = [e for e in entries if e.ok and e.role == "encoder" and e.precision == "fp32"]
    return next((e for e in encoders if e.path == preferred), encoders[0] if encoders else None)


def describe(entry: ModelEntry) -> str:
    """One line per file for the setup dialog."""
    size = f"{entry.size / 2**20:.0f} MiB" if entry.size >= 2**20 else f"{entry.size} bytes"
    name = os.path.basename(entry.path)
    if not entry.ok:
        return f"{name} ({size}): unusable: {entry.error}"
    what = entry.role if entry.role == "checkpoint" else f"{entry.precision} {entry.role}"
    if entry.verified:
        check = "checksum verified"
    elif entry.role == "checkpoint" and entry.model_type:
        check = "checksum differs from the official checkpoint"
    else:
        check = "unverified (no published checksum)"
    return f"{name} ({size}): {what}, {entry.model_type or 'SAM type unknown'}, {check}"


# ---------------------------------------------------------------- export from a checkpoint

EXPORT_SETUP = (
    "pip install torch segment-anything==1.0 onnx onnxscript",
    "pip install --no-deps samexporter==0.5.0",
)
EXPORT_MODULES = ("torch", "segment_anything", "samexporter", "onnx")


def export_commands(
    python: str, checkpoint: os.PathLike, model_type: str, out_dir: os.PathLike
) -> List[List[str]]:
    """samexporter 0.5.0 command lines (encoder with ``--use-preprocess``, then decoder).

    ``samexporter export-encoder`` as printed in some READMEs does not exist; the
    entry points are the ``samexporter.export_encoder`` / ``export_decoder`` modules.
    """
    if model_type not in REGISTRY:
        raise ModelError(f"unknown SAM model type '{model_type}'; choose one of {', '.join(REGISTRY)}")
    files = {(f.role, f.precision): f.filename for f in REGISTRY[model_type].files}
    enc, dec = (Path(out_dir) / files[(role, "fp32")] for role in ("encoder", "decoder"))
    common = ["--checkpoint", os.fspath(checkpoint)]
    return [
        [python, "-m", "samexporter.export_encoder", *common, "--output", os.fspath(enc),
         "--model-type", model_type, "--use-preprocess"],
        [python, "-m", "samexporter.export_decoder", *common, "--output", os.fspath(dec),
         "--model-type", model_type],
    ]


def export_instructions(checkpoint: os.PathLike, model_type: str, out_dir: os.PathLike) -> str:
    """The exact commands to export by hand, in a Python environment with PyTorch."""
    cmds = [command_text(c) for c in export_commands("python", checkpoint, model_type, out_dir)]
    return (
        "In a Python environment with PyTorch (not QGIS's), run:\n\n"
        + "\n".join(EXPORT_SETUP) + "\n" + "\n".join(cmds)
        + "\n\nThen press 'Refresh' here; the files are picked up from the models folder."
    )


def run_export(
    python: str,
    checkpoint: os.PathLike,
    model_type: str,
    out_dir: os.PathLike,
    on_line: Optional[Callable[[str], None]] = None,
    cancelled: Optional[Callable[[], bool]] = None,
) -> List[Path]:
    """Run :func:`export_commands` with ``python`` and move the results into ``out_dir``.

    The export writes into a hidden staging folder first, so an interrupted one
    leaves no half-written model where discovery would find it (large models
    also write external-data files beside the ``.onnx``).

    Raises:
        ModelError: samexporter failed; ProcessCancelledError: ``cancelled()`` turned True.
    """
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=out_dir)
    try:
        for cmd in export_commands(python, checkpoint, model_type, staging):
            if on_line:
                on_line(command_text(cmd))
            code, lines = run_streaming(cmd, on_line, cancelled)
            if code != 0:
                last = lines[-1] if lines else "no output"
                raise ModelError(f"samexporter failed (exit code {code}): {last}")
        moved = []
        for name in sorted(os.listdir(staging)):
            os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
            moved.append(Path(out_dir) / name)
        return moved
    finally:
        shutil.rmtree(staging, ignore_errors=True)
