"""Build the plugin zip users install ("Install from ZIP", plugins.qgis.org): standard library and git only.

``python3 tools/package.py [--out dist]`` writes ``dist/ai_segmentation-<version>.zip`` (version from
metadata.txt) holding one folder, ``ai_segmentation/``, with the files the plugin needs at run time and
nothing else. Files come from ``git ls-files`` (untracked or ignored files are never shipped) and must match
:data:`RUNTIME`; a tracked file inside a runtime folder that matches no pattern stops the build, so a new
file is shipped or left out on purpose. The zip is deterministic: same tree, same bytes.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Iterable, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
MODULE = "ai_segmentation"  # the folder name QGIS installs the plugin under
# What the plugin loads at run time, as globs relative to the repository root ("**/" spans folders).
RUNTIME = (
    "__init__.py",
    "ai_segmentation_*.py",
    "metadata.txt",
    "LICENSE",
    "core/**/*.py",
    "core/families/graphs/*.onnx",  # small fixed graphs the engine runs (mask post-processing)
    "core/**/*.json",  # catalogue data (model names, URLs)
    "core/**/*.sha256",  # the catalogue's checksums, in sha256sum's format
    "core/**/*.tsv",
    "core/**/*.csv",
    "gui/**/*.py",
    "processing_provider/**/*.py",
    "toolbelt/**/*.py",
    "ui/**/*.py",
    "resources/icons/*.svg",
    "resources/icons/*.png",
    "models/README.md",  # opened by the setup dialog's help link
)
# Every tracked file under these folders must match RUNTIME: they hold nothing but run-time files.
RUNTIME_DIRS = ("core", "gui", "processing_provider", "toolbelt", "ui", "resources")
MAX_FILE_BYTES = 2 * 1024 * 1024  # a bigger file is a model or a fixture, not plugin code
MAX_ZIP_BYTES = 25_000_000  # plugins.qgis.org upload limit
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+-]*")


class PackageError(Exception):
    """The tree cannot be packaged; the message names the file and what to do."""


def _glob_regex(pattern: str) -> re.Pattern:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


_PATTERNS = tuple(_glob_regex(p) for p in RUNTIME)


def is_runtime(path: str) -> bool:
    """True if the repository path ``path`` (posix, relative) matches :data:`RUNTIME`."""
    return any(p.fullmatch(path) for p in _PATTERNS)


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise PackageError(f"git is needed to list the tracked files ({exc})") from None
    if out.returncode != 0:
        raise PackageError(f"'git {' '.join(args)}' failed in {root}: {out.stderr.strip()}")
    return out.stdout


def tracked_files(root: Path = ROOT) -> List[str]:
    """Paths git tracks in ``root``, posix and relative, sorted."""
    return sorted(p for p in _git(root, "ls-files", "-z").split("\0") if p)


def select(files: Iterable[str]) -> List[str]:
    """The run-time subset of ``files``.

    Raises:
        PackageError: a file in a runtime folder matches no pattern, or a required file is missing.
    """
    files = sorted(set(files))
    chosen = [f for f in files if is_runtime(f)]
    stray = [f for f in files if f.split("/", 1)[0] in RUNTIME_DIRS and f not in chosen]
    if stray:
        raise PackageError(
            "tracked files in run-time folders match no pattern of RUNTIME in tools/package.py: "
            + ", ".join(stray) + ". Add a pattern there if the plugin needs them, else move them out."
        )
    missing = [p for p in RUNTIME if "*" not in p and p not in chosen]
    if missing:
        raise PackageError(f"required plugin files are not tracked by git: {', '.join(missing)}")
    return chosen


def plugin_version(root: Path = ROOT) -> str:
    """``version`` of metadata.txt's [general] section, checked to be usable in a file name."""
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(root / "metadata.txt", encoding="utf-8") or not parser.has_section("general"):
        raise PackageError(f"{root / 'metadata.txt'} is missing or has no [general] section")
    version = parser["general"].get("version", "").strip()
    if not _VERSION.fullmatch(version):
        raise PackageError(f"metadata.txt: version '{version}' is not a version number such as 0.2.0")
    return version


def _timestamp(root: Path) -> Tuple[int, int, int, int, int, int]:
    """Time of the last commit (zip entries need >= 1980), so a rebuild gives the same bytes."""
    seconds = max(int(_git(root, "log", "-1", "--format=%ct").strip() or 0), 315532800)
    return time.gmtime(seconds)[:6]


def _entries(files: Sequence[str]) -> List[str]:
    """Folder entries (``a/``) and files, each folder before its contents, under MODULE."""
    names = {f"{MODULE}/"}
    for f in files:
        parts = f.split("/")
        names.update(f"{MODULE}/{'/'.join(parts[:i])}/" for i in range(1, len(parts)))
        names.add(f"{MODULE}/{f}")
    return sorted(names)


def write_zip(root: Path, files: Sequence[str], dest: Path) -> Path:
    """Write ``files`` (repository paths) into ``dest`` under ``MODULE/``, atomically."""
    stamp = _timestamp(root)
    tmp = dest.with_name(dest.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in _entries(files):
            info = zipfile.ZipInfo(name, stamp)
            info.create_system = 3  # unix, so the permission bits below are read
            if name.endswith("/"):
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
                continue
            src = root / name[len(MODULE) + 1:]
            if src.is_symlink() or not src.is_file():
                raise PackageError(f"{src} is tracked but is not a regular file in the working tree")
            data = src.read_bytes()
            if len(data) > MAX_FILE_BYTES:
                raise PackageError(f"{src} is {len(data)} bytes: models and fixtures do not belong in the plugin")
            info.external_attr = 0o100644 << 16  # never executable
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    size = tmp.stat().st_size
    if size > MAX_ZIP_BYTES:
        tmp.unlink()
        raise PackageError(f"the zip would be {size} bytes, over the {MAX_ZIP_BYTES} bytes plugins.qgis.org accepts")
    os.replace(tmp, dest)
    return dest


def build(root: Path = ROOT, out_dir: Path | None = None) -> Path:
    """Build ``<out_dir>/ai_segmentation-<version>.zip`` (default ``<root>/dist``), the only zip of the plugin there.

    Returns:
        the zip's path.
    """
    root = Path(root).resolve()
    out_dir = Path(out_dir) if out_dir is not None else root / "dist"
    files = select(tracked_files(root))
    dest = out_dir / f"{MODULE}-{plugin_version(root)}.zip"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(f"{MODULE}-*.zip"):
        if old != dest:
            old.unlink()
    return write_zip(root, files, dest)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: ROOT/dist)")
    args = parser.parse_args(argv)
    try:
        path = build(args.root, args.out)
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(path) as zf:
        count = sum(1 for n in zf.namelist() if not n.endswith("/"))
    print(f"{path}  ({path.stat().st_size} bytes, {count} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
