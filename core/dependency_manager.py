"""Finding, and installing on consent, the few Python packages the plugin needs.

Qt-free. Nothing here runs at import time: detection uses package metadata and
``importlib.util.find_spec`` only (importing onnxruntime to detect it would load
its native library, the very thing that may fail), and installing is an explicit
call. Packages go into a private, per-Python-version folder of the QGIS profile,
never into QGIS's own site-packages, with QGIS's numpy pinned so that nothing
QGIS was built against is replaced.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from .deps.process import (  # noqa: F401  (re-exported: other modules import these from here)
    DependencyInstallError,
    ProcessCancelledError,
    command_text,
    probe_modules,
    python_argv,
    run_streaming,
)
from .deps.python_choice import is_launcher
from .errors import SegmentationError  # noqa: F401  (re-exported)

log = logging.getLogger("ai_segmentation")

DEPS_FOLDER = "ai_segmentation_deps"
LOG_TAIL_LINES = 15  # pip lines quoted in an error message
# The ONNX Runtime builds: CPU (with CoreML on macOS), CUDA/TensorRT, DirectML, OpenVINO. All install the
# same module 'onnxruntime', so any of them satisfies the requirement, and two of them overwrite each other.
ORT_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")


@dataclass(frozen=True)
class Requirement:
    """A package the plugin uses.

    Attributes:
        name: distribution name on the package index (``pip install NAME``).
        module: top-level import name.
        minimum: lowest working version, e.g. ``"1.15.0"``; ``None`` for any.
        purpose: what the plugin needs it for, shown to the user.
        required: False for packages only some features need.
        provided_by: other distributions that install the same module (``onnxruntime-gpu``...).
    """

    name: str
    module: str
    minimum: Optional[str]
    purpose: str
    required: bool = True
    provided_by: Tuple[str, ...] = ()

    @property
    def pip_spec(self) -> str:
        return f"{self.name}>={self.minimum}" if self.minimum else self.name


REQUIREMENTS = (
    Requirement("onnxruntime", "onnxruntime", "1.15.0", "runs the SAM models", provided_by=ORT_PACKAGES[1:]),
    Requirement("numpy", "numpy", "1.20.0", "image and mask arrays"),
    Requirement("onnx", "onnx", "1.14.0", "building the fast int8 encoder", required=False),
)


@dataclass(frozen=True)
class DependencyStatus:
    """What was found for one :class:`Requirement`; ``version`` is None when unknown or missing, ``dist``
    the distribution that provides the module when it is not the requirement's own (``onnxruntime-gpu``)."""

    requirement: Requirement
    found: bool
    version: Optional[str]
    dist: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.found and not self.too_old

    @property
    def too_old(self) -> bool:
        minimum = self.requirement.minimum
        if not (self.found and self.version and minimum):
            return False
        return version_tuple(self.version) < version_tuple(minimum)

    def describe(self) -> str:
        """One line for the user, e.g. ``"onnxruntime 1.31.1 (runs the SAM models)"``."""
        req = self.requirement
        if not self.found:
            state = "missing"
        elif self.too_old:
            state = f"{self.version}, too old (needs >= {req.minimum})"
        else:
            state = self.version or "installed, version unknown"
        if self.dist:
            state += f" from {self.dist}"
        optional = "" if req.required else ", optional"
        return f"{req.name}: {state} ({req.purpose}{optional})"


def version_tuple(version: str) -> Tuple[int, ...]:
    """Leading numeric release parts: ``"1.24.2+dfsg"`` -> ``(1, 24, 2)``."""
    parts = []
    for piece in version.split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts)


def module_folder(module: str) -> Optional[Path]:
    """The sys.path folder ``module`` is imported from, found without importing it; None if absent."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return None
    if spec is None:
        return None
    places = list(spec.submodule_search_locations or []) or ([spec.origin] if spec.origin else [])
    return Path(places[0]).parent if places else Path()  # a built-in module: found, in no folder


def _version(req: Requirement, folder: Path) -> Tuple[Optional[str], Optional[str]]:
    """(version, distribution) of what provides ``req.module``; the distribution installed in ``folder``
    wins, as its files are the ones imported. The distribution is None when it is ``req.name`` itself."""
    found = []
    for name in (req.name, *req.provided_by):
        for dist in importlib.metadata.distributions(name=name):
            found.append((Path(os.fspath(dist.locate_file(""))) == folder, dist.version, name))
    if not found:
        return None, None
    _, version, name = max(found, key=lambda f: f[0])  # max keeps the first of equals: sys.path order
    return version, (None if name == req.name else name)


def detect(requirements: Sequence[Requirement] = REQUIREMENTS) -> List[DependencyStatus]:
    """Status of each requirement, without importing any of them."""
    importlib.invalidate_caches()  # a folder may have gained packages since the last look
    statuses = []
    for req in requirements:
        folder = module_folder(req.module)
        version, dist = _version(req, folder) if folder is not None else (None, None)
        statuses.append(DependencyStatus(req, folder is not None, version, dist))
    return statuses


def missing(statuses: Sequence[DependencyStatus], include_optional: bool = False) -> List[Requirement]:
    """Requirements that are absent or too old (optional ones only if asked)."""
    return [s.requirement for s in statuses if not s.ok and (include_optional or s.requirement.required)]


def deps_dir(profile_dir: os.PathLike, version: Tuple[int, int] = tuple(sys.version_info[:2])) -> Path:
    """Private package folder: ``<profile>/python/ai_segmentation_deps/py3.11``.

    Per Python version because compiled wheels (onnxruntime) only load in the
    Python they were built for; a QGIS upgrade then starts a fresh folder.
    """
    return Path(profile_dir) / "python" / DEPS_FOLDER / f"py{version[0]}.{version[1]}"


def add_to_sys_path(folder: os.PathLike) -> bool:
    """Append an existing ``folder`` to ``sys.path``; True if it is (now) there.

    Appended, not prepended: QGIS's own packages always win, the private folder
    only supplies what QGIS lacks.
    """
    path = os.fspath(folder)
    if not os.path.isdir(path):
        return False
    if path not in sys.path:
        sys.path.append(path)
        importlib.invalidate_caches()
    return True


def constraints_text(installed: Mapping[str, Optional[str]]) -> str:
    """pip constraints pinning the given installed versions (``None`` versions are skipped)."""
    return "".join(f"{name}=={ver}\n" for name, ver in sorted(installed.items()) if ver)


def write_constraints(folder: os.PathLike) -> Path:
    """Write ``constraints.txt`` pinning QGIS's numpy into ``folder`` (atomically); return its path."""
    numpy = next(s for s in detect([r for r in REQUIREMENTS if r.name == "numpy"]))
    text = constraints_text({"numpy": numpy.version if numpy.found else None})
    target = Path(folder) / "constraints.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target


def find_python(
    executable: str,
    exec_prefix: str,
    platform: str = sys.platform,
    version: Tuple[int, int] = tuple(sys.version_info[:2]),
) -> Optional[str]:
    """The Python interpreter of the running QGIS, or None.

    Inside QGIS ``sys.executable`` is often QGIS itself: ``...\\bin\\qgis-bin.exe``
    on Windows (Python in ``sys.exec_prefix``, e.g. ``apps\\Python39``),
    ``QGIS.app/Contents/MacOS/QGIS`` on macOS (Python in ``MacOS/bin``). When it
    names a Python, that one may be merely the first ``python3`` on PATH (an
    embedded Python searches PATH for its own name): it is used only if it is a
    program of this version installed under ``exec_prefix``.
    """
    major, minor = version
    name = os.path.basename(executable).lower()
    if re.fullmatch(r"python(\d+(\.\d+)?)?(\.exe)?", name):
        if _is_this_python(executable, exec_prefix, version):
            return executable
        # Python found itself on PATH (a pyenv shim, another install): only its own prefix counts.
        executable = os.path.join(exec_prefix, "bin", "python")
    here = os.path.dirname(executable)
    if platform.startswith("win"):
        names = ["python.exe", f"python{major}.exe"]
        folders = [exec_prefix, here, os.path.join(exec_prefix, "bin")]
    else:
        names = [f"python{major}.{minor}", f"python{major}", "python"]
        folders = [os.path.join(here, "bin"), os.path.join(exec_prefix, "bin"), here]
    for folder in folders:
        for candidate in names:
            path = os.path.join(folder, candidate)
            if os.path.isfile(path) and _is_this_python(path, None, version):
                return path
    return None


def _is_this_python(path: str, exec_prefix: Optional[str], version: Tuple[int, int]) -> bool:
    """Whether ``path`` can be the running interpreter: a program, not a launcher script (a pyenv or
    asdf shim runs whichever Python its configuration names), not another version, and (when
    ``exec_prefix`` is given) installed under it, not merely the first ``python3`` on PATH."""
    real = os.path.realpath(path)
    if not os.path.isfile(real) or is_launcher(real):
        return False
    numbered = re.fullmatch(r"python(\d+)\.(\d+)(\.exe)?", os.path.basename(real).lower())
    if numbered and (int(numbered.group(1)), int(numbered.group(2))) != tuple(version):
        return False
    if exec_prefix is None:
        return True
    for prefix in {os.path.realpath(p) for p in (exec_prefix, getattr(sys, "base_exec_prefix", exec_prefix))}:
        try:  # a venv's interpreter lives under its base prefix
            if os.path.commonpath([real, prefix]) == prefix:
                return True
        except ValueError:  # another drive (Windows)
            continue
    return False


def qgis_python() -> str:
    """:func:`find_python` for this process, or raise :class:`DependencyInstallError`."""
    python = find_python(sys.executable, sys.exec_prefix)
    if python is None:
        raise DependencyInstallError(no_python_text())
    return python


def no_python_text() -> str:
    """What to tell the user when :func:`find_python` finds nothing."""
    return (
        f"cannot find the Python interpreter of this QGIS (sys.executable is '{sys.executable}', "
        f"sys.exec_prefix is '{sys.exec_prefix}'): choose it (python3 or python.exe in QGIS's folder), or install "
        f"{', '.join(r.pip_spec for r in REQUIREMENTS)} with the OSGeo4W shell or your system package manager"
    )


def pip_command(
    python: str,
    target: os.PathLike,
    packages: Sequence[str],
    constraints: Optional[os.PathLike] = None,
    proxy: Optional[str] = None,
    find_links: Optional[os.PathLike] = None,
) -> List[str]:
    """argv of ``pip install --target`` for the given package specs.

    Wheels only: building numpy or onnxruntime from source inside QGIS would take
    an hour and fail without a compiler. ``find_links``: a folder of wheels to
    install from instead of the package index (offline).
    """
    cmd = [python, "-m", "pip", "install", "--target", os.fspath(target), "--upgrade"]
    cmd += ["--only-binary=:all:", "--disable-pip-version-check", "--no-warn-script-location"]
    if constraints is not None:
        cmd += ["--constraint", os.fspath(constraints)]
    if proxy:
        cmd += ["--proxy", proxy]
    if find_links is not None:
        cmd += ["--no-index", "--find-links", os.fspath(find_links)]
    return cmd + list(packages)


def install_plan(requirements: Sequence[Requirement], target: os.PathLike, python: str) -> str:
    """What :func:`install` will do, for the consent dialog."""
    lines = [f"  {r.pip_spec}  ({r.purpose})" for r in requirements]
    return (
        "The following packages will be downloaded from the Python Package Index (PyPI):\n"
        + "\n".join(lines)
        + f"\n\ninto the private folder\n  {os.fspath(target)}\n\nusing\n  {python}\n\n"
        "QGIS's own packages are not changed: numpy stays at the version QGIS already has."
    )


def _explain_failure(log_lines: Sequence[str]) -> str:
    text = "\n".join(log_lines).lower()
    if "no module named pip" in text:
        return "pip is not available in QGIS's Python."
    offline = (
        "newconnectionerror", "name resolution", "getaddrinfo failed", "network is unreachable",
        "connection refused", "read timed out", "proxyerror", "max retries exceeded",
    )
    if any(k in text for k in offline):
        return "the package index could not be reached (offline, or a proxy or firewall blocks it)."
    if "no matching distribution" in text or "could not find a version" in text:
        return "no compatible wheel was found for this Python and platform (or the index is unreachable)."
    return "pip failed."


def install(
    packages: Sequence[str],
    target: os.PathLike,
    python: Optional[str] = None,
    on_line: Optional[Callable[[str], None]] = None,
    cancelled: Optional[Callable[[], bool]] = None,
    proxy: Optional[str] = None,
    find_links: Optional[os.PathLike] = None,
) -> List[str]:
    """Install ``packages`` (pip specs) into ``target`` and put it on ``sys.path``.

    Runs ``python -m pip`` (default: QGIS's own Python) in a subprocess, streams
    each output line to ``on_line``, and stops pip when ``cancelled()`` turns True.
    ``find_links``: a folder of wheels to install from, without the package index.
    pip stages into a temporary folder and moves the result in at the end, so a
    failed install leaves ``target`` as it was.

    Returns:
        the full pip log, one string per line.

    Raises:
        DependencyInstallError: pip failed or was cancelled; the message says why
            and gives the exact command to run by hand.
    """
    python = python or qgis_python()
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    constraints = write_constraints(target.parent)
    cmd = pip_command(python, target, packages, constraints, proxy, find_links)
    manual = command_text(cmd)
    log.info("installing %s: %s", ", ".join(packages), manual)
    try:
        code, lines = run_streaming(cmd, on_line, cancelled, env={"PIP_NO_INPUT": "1"})
    except (OSError, ValueError) as exc:
        raise DependencyInstallError(f"could not start '{python}' ({exc}). Run by hand:\n{manual}") from None
    except ProcessCancelledError:
        raise DependencyInstallError(
            f"installation cancelled; nothing was installed. To install by hand:\n{manual}"
        ) from None
    if code != 0:
        tail = "\n".join(deque(lines, maxlen=LOG_TAIL_LINES))
        raise DependencyInstallError(
            f"installing {', '.join(packages)} failed: {_explain_failure(lines)} "
            f"To install by hand, run:\n{manual}\n\nLast lines of pip's log:\n{tail}"
        )
    add_to_sys_path(target)
    return lines
