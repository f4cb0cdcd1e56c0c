"""Replacing the ONNX Runtime package in the plugin's private folder, with a backup as the way back.

Qt-free. Only the private folder is changed. The current package's files are
moved (renamed: same disk, nothing copied) into a backup folder next to it
before pip installs the wanted one; if pip fails or is cancelled they are moved
back, so there is always one onnxruntime. After a switch the backup is the way
back: switching to the backed-up package restores it without a download.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from .. import dependency_manager as deps
from . import runtime_packages as rp

log = logging.getLogger("ai_segmentation")


def backup_dir(target: os.PathLike) -> Path:
    """``<profile>/python/ai_segmentation_deps_backup/py3.X`` for ``<profile>/python/ai_segmentation_deps/py3.X``."""
    target = Path(target)
    return target.parent.parent / f"{deps.DEPS_FOLDER}_backup" / target.name


def _staging(target: Path) -> Path:
    backup = backup_dir(target)
    return backup.with_name(f".{backup.name}.moving")


def _entries(dist: importlib.metadata.Distribution) -> List[Path]:
    """The top-level entries of ``dist`` in its folder (relative paths): its package folders, its
    ``*.dist-info``, its ``onnxruntime_*`` libraries, and its own scripts in the shared ``bin``."""
    entries = {Path("onnxruntime")}  # also when RECORD is missing
    for file in dist.files or []:
        parts = Path(file).parts
        if not parts or parts[0] == "..":
            continue
        entries.add(Path(*parts[:2]) if parts[0] in ("bin", "Scripts") and len(parts) > 1 else Path(parts[0]))
    return sorted(entries)


def _private_dists(target: Path) -> List[importlib.metadata.Distribution]:
    importlib.invalidate_caches()
    return [d for d in importlib.metadata.distributions(path=[os.fspath(target)])
            if rp.canonical(d.metadata["Name"] or "") in deps.ORT_PACKAGES]


def _move_tree(src: Path, dst: Path) -> None:
    """Move every entry of ``src`` into ``dst`` (created), descending into folders both have (``bin``)."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.iterdir()):
        if item.is_dir() and (dst / item.name).is_dir():
            _move_tree(item, dst / item.name)
            item.rmdir()
        else:
            os.replace(item, dst / item.name)


def _move_out(target: Path, staging: Path) -> List[str]:
    """Move the private ONNX Runtime package(s) into ``staging/<name>-<version>``; their names."""
    moved = []
    for dist in _private_dists(target):
        name = f"{rp.canonical(dist.metadata['Name'])}-{dist.version}"
        for rel in _entries(dist):
            src = target / rel
            if src.exists() or src.is_symlink():
                (staging / name / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, staging / name / rel)
        moved.append(name)
    return moved


def _remove_runtime(target: Path) -> None:
    """Delete whatever ONNX Runtime files are in ``target`` (a half-done install before a rollback)."""
    for dist in _private_dists(target):
        for rel in _entries(dist):
            path = target / rel
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    if (target / "onnxruntime").is_dir():
        shutil.rmtree(target / "onnxruntime")


def _put_back(staging: Path, target: Path) -> None:
    """Move every package saved in ``staging`` back into ``target``, then drop ``staging``."""
    if staging.is_dir():
        for saved in sorted(staging.iterdir()):
            _move_tree(saved, target)
        shutil.rmtree(staging)


def _keep_as_backup(staging: Path, backup: Path) -> None:
    """``staging`` becomes the backup, replacing an older one; when it is empty the older one stays."""
    if not staging.is_dir():
        return
    if not any(staging.iterdir()):
        staging.rmdir()
        return
    old = backup.with_name(f".{backup.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if backup.exists():
        os.replace(backup, old)
    os.replace(staging, backup)
    if old.exists():
        shutil.rmtree(old)


def recover(target: os.PathLike) -> None:
    """Finish a switch that QGIS did not live to finish: with no onnxruntime left in ``target``, the
    package moved aside goes back; otherwise the leftover is dropped."""
    target = Path(target)
    staging = _staging(target)
    if not staging.exists():
        return
    if _private_dists(target):
        shutil.rmtree(staging)
    else:
        _put_back(staging, target)


def backed_up(target: os.PathLike) -> List[str]:
    """The packages in the backup, as ``name-version`` (e.g. ``["onnxruntime-1.32.0"]``)."""
    backup = backup_dir(target)
    return sorted(p.name for p in backup.iterdir() if p.is_dir()) if backup.is_dir() else []


def _backup_of(target: Path, package: str) -> Optional[str]:
    return next((b for b in backed_up(target) if b.rsplit("-", 1)[0] == package), None)


def refuse_outside(wanted: str, target: os.PathLike, python: Optional[str],
                   paths: Optional[Sequence[str]] = None) -> List[rp.InstalledRuntime]:
    """The installed ONNX Runtime packages, all in the private folder ``target``; raise otherwise.

    Raises:
        DependencyInstallError: one is in QGIS's own Python (``paths``, default ``sys.path``): the plugin
            does not change QGIS's packages, and that one would still be loaded instead of ``wanted``.
    """
    installed = rp.installed_runtimes(target, paths)
    outside = [r for r in installed if not r.private]
    if outside:
        first = outside[0]
        cmd = deps.command_text([python or "python3", "-m", "pip", "uninstall", first.name])
        raise deps.DependencyInstallError(
            f"{first.name} {first.version} is installed in QGIS's own Python ({first.folder}). The plugin does not "
            f"change QGIS's packages, and that one would still be loaded instead of {wanted}. Remove it by hand "
            f"(with the tool that installed it: OSGeo4W setup, your package manager, or\n  {cmd}\n), then "
            "switch again."
        )
    return installed


def switch_runtime(
    wanted: str,
    target: os.PathLike,
    python: Optional[str] = None,
    on_line: Optional[Callable[[str], None]] = None,
    cancelled: Optional[Callable[[], bool]] = None,
    proxy: Optional[str] = None,
    paths: Optional[Sequence[str]] = None,
    cuda_libs: bool = False,
    find_links: Optional[os.PathLike] = None,
) -> str:
    """Make ``wanted`` the one ONNX Runtime package of the private folder ``target``.

    The current package is moved into :func:`backup_dir` (replacing an older backup) and ``wanted``
    is restored from that backup when it is there, else installed with pip (``cuda_libs``: with the
    NVIDIA CUDA/cuDNN wheels; ``find_links``: from a folder of wheels). When pip fails or is cancelled,
    the moved package is put back as it was.

    Args:
        paths: where QGIS's own packages are looked for (default ``sys.path``).

    Returns:
        what was done, for the user (with a note when QGIS must be restarted).

    Raises:
        DependencyInstallError: an ONNX Runtime package is in QGIS's own Python (the plugin does not remove
            it), a file could not be moved, or pip failed (after the rollback).
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    python = python or deps.qgis_python()
    recover(target)
    installed = refuse_outside(wanted, target, python, paths)
    current = [f"{r.name} {r.version}" for r in installed]
    if [r.name for r in installed] == [wanted]:
        return f"{current[0]} is already the ONNX Runtime package in {target}: nothing to do."
    staging, backup = _staging(target), backup_dir(target)
    restore = _backup_of(target, wanted)
    try:
        _move_out(target, staging)
    except OSError as exc:  # Windows: files of a loaded onnxruntime are locked
        _put_back(staging, target)
        raise deps.DependencyInstallError(
            f"cannot move {', '.join(current)} out of {target} ({exc}); nothing was changed. Restart QGIS and "
            "switch before segmenting anything (the loaded package cannot be moved)."
        ) from None
    try:
        if restore is not None:
            _move_tree(backup / restore, target)
            (backup / restore).rmdir()
            if on_line:
                on_line(f"restored {restore} from {backup}")
        else:
            deps.install([rp.pip_spec(wanted, cuda_libs)], target, python, on_line, cancelled, proxy, find_links)
    except BaseException as exc:  # whatever stopped it (pip, cancel, a full disk), onnxruntime must come back
        if restore is not None:
            _move_out(target, backup)  # what came out of the backup goes back into it
        else:
            _remove_runtime(target)
        _put_back(staging, target)
        if not isinstance(exc, (deps.DependencyInstallError, OSError)):
            raise
        kept = f"{', '.join(current)} was put back as it was. " if current else ""
        raise deps.DependencyInstallError(f"switching to {wanted} failed; {kept}{exc}") from None
    _keep_as_backup(staging, backup)
    deps.add_to_sys_path(target)
    now = next((f"{r.name} {r.version}" for r in rp.installed_runtimes(target, [os.fspath(target)])), wanted)
    done = f"{now} is now the ONNX Runtime package in {target}."
    if current:
        done += f" {', '.join(current)} is kept in {backup}: switching back to it needs no download."
    return " ".join(t for t in (done, rp.restart_note(wanted)) if t)


def switch_plan(wanted: str, target: os.PathLike, python: str, cuda_libs: bool,
                paths: Optional[Sequence[str]] = None) -> str:
    """What :func:`switch_runtime` will do, for the consent dialog.

    Raises:
        DependencyInstallError: the switch would be refused (a package in QGIS's own Python).
    """
    target = Path(target)
    installed = refuse_outside(wanted, target, python, paths)
    restore = _backup_of(target, wanted)
    backup = backup_dir(target)
    if restore is not None:
        lines = [f"{restore} will be restored from the backup in\n  {backup}\n(no download)."]
    else:
        size = rp.SIZES[wanted]
        lines = [f"{rp.pip_spec(wanted, cuda_libs)} ({size}) will be downloaded from the Python Package Index "
                 f"(PyPI) into the plugin's folder\n  {target}\nusing\n  {python}"]
        if cuda_libs and wanted == rp.GPU:
            lines.append("It brings NVIDIA's CUDA 12 and cuDNN 9 runtime libraries as well: several GB more "
                         "download and disk space. Leave them out if CUDA 12 and cuDNN 9 are installed.")
    lines.append(f"{wanted} runs the models on {rp.DEVICES[wanted]}.")
    private = [f"{r.name} {r.version}" for r in installed if r.private]
    if private:
        lines.append(f"{', '.join(private)} will be moved to the backup folder\n  {backup}\n(replacing an "
                     "older backup). If the installation fails or is cancelled it is put back; later, switching "
                     "back to it restores it without a download.")
    if backed_up(target) and not private:
        lines.append(f"The backup in {backup} is kept.")
    note = rp.restart_note(wanted)
    return "\n\n".join(lines + ([note] if note else []))
