"""Finding, and installing on consent, the few Python packages the plugin needs.

Qt-free. Nothing here runs at import time: detection uses package metadata and
``importlib.util.find_spec`` only (importing onnxruntime to detect it would load
its native library, the very thing that may fail), and installing is an explicit
call. Packages go into a private, per-Python-version folder of the QGIS profile,
never into QGIS's own site-packages, with QGIS's numpy pinned so that nothing
QGIS was built against is replaced.
"""

from __future__ import annotations

import errno
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, cast

from .errors import SegmentationError

log = logging.getLogger("ai_segmentation")

DEPS_FOLDER = "ai_segmentation_deps"
LOG_TAIL_LINES = 15  # pip lines quoted in an error message
# The only programs the plugin starts: a Python interpreter running pip or one of samexporter's exporters
# ("-m"), or a short script of the plugin's own ("-c", the find_spec probe). Never a shell.
_MODULES = re.compile(r"pip|samexporter(\.[A-Za-z_][A-Za-z0-9_]*)+")
_PYTHON_NAME = re.compile(r"python[0-9.]*(\.exe)?", re.IGNORECASE)


class DependencyInstallError(SegmentationError):
    """pip could not install the packages; the message gives the manual command."""


@dataclass(frozen=True)
class Requirement:
    """A package the plugin uses.

    Attributes:
        name: distribution name on the package index (``pip install NAME``).
        module: top-level import name.
        minimum: lowest working version, e.g. ``"1.15.0"``; ``None`` for any.
        purpose: what the plugin needs it for, shown to the user.
        required: False for packages only some features need.
    """

    name: str
    module: str
    minimum: Optional[str]
    purpose: str
    required: bool = True

    @property
    def pip_spec(self) -> str:
        return f"{self.name}>={self.minimum}" if self.minimum else self.name


REQUIREMENTS = (
    Requirement("onnxruntime", "onnxruntime", "1.15.0", "runs the SAM models"),
    Requirement("numpy", "numpy", "1.20.0", "image and mask arrays"),
    Requirement("onnx", "onnx", "1.14.0", "building the fast int8 encoder", required=False),
)


@dataclass(frozen=True)
class DependencyStatus:
    """What was found for one :class:`Requirement`; ``version`` is None when unknown or missing."""

    requirement: Requirement
    found: bool
    version: Optional[str]

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


def _module_present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False


def detect(requirements: Sequence[Requirement] = REQUIREMENTS) -> List[DependencyStatus]:
    """Status of each requirement, without importing any of them."""
    importlib.invalidate_caches()  # a folder may have gained packages since the last look
    statuses = []
    for req in requirements:
        found = _module_present(req.module)
        try:
            version: Optional[str] = importlib.metadata.version(req.name) if found else None
        except importlib.metadata.PackageNotFoundError:
            version = None
        statuses.append(DependencyStatus(req, found, version))
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
    ``QGIS.app/Contents/MacOS/QGIS`` on macOS (Python in ``MacOS/bin``).
    """
    name = os.path.basename(executable).lower()
    if re.fullmatch(r"python(\d+(\.\d+)?)?(\.exe)?", name) and os.path.isfile(executable):
        return executable
    major, minor = version
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
            if os.path.isfile(path):
                return path
    return None


def qgis_python() -> str:
    """:func:`find_python` for this process, or raise :class:`DependencyInstallError`."""
    python = find_python(sys.executable, sys.exec_prefix)
    if python is None:
        raise DependencyInstallError(
            f"cannot find the Python interpreter of this QGIS (sys.executable is '{sys.executable}', "
            f"sys.exec_prefix is '{sys.exec_prefix}'); install {', '.join(r.pip_spec for r in REQUIREMENTS)} "
            "with the OSGeo4W shell or your system package manager"
        )
    return python


def pip_command(
    python: str,
    target: os.PathLike,
    packages: Sequence[str],
    constraints: Optional[os.PathLike] = None,
    proxy: Optional[str] = None,
) -> List[str]:
    """argv of ``pip install --target`` for the given package specs.

    Wheels only: building numpy or onnxruntime from source inside QGIS would take
    an hour and fail without a compiler.
    """
    cmd = [python, "-m", "pip", "install", "--target", os.fspath(target), "--upgrade"]
    cmd += ["--only-binary=:all:", "--disable-pip-version-check", "--no-warn-script-location"]
    if constraints is not None:
        cmd += ["--constraint", os.fspath(constraints)]
    if proxy:
        cmd += ["--proxy", proxy]
    return cmd + list(packages)


def command_text(cmd: Sequence[str], platform: str = sys.platform) -> str:
    """``cmd`` as the user would type it in a terminal of ``platform``."""
    if platform.startswith("win"):
        return subprocess.list2cmdline(list(cmd))
    return " ".join(shlex.quote(c) for c in cmd)


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


class ProcessCancelledError(SegmentationError):
    """The user stopped a subprocess started by :func:`run_streaming`."""


def python_argv(cmd: Sequence[str]) -> List[str]:
    """``cmd`` as an argument list, if it is a command the plugin may start.

    Allowed: ``[PYTHON, "-m", MODULE, ...]`` with MODULE ``pip`` or a ``samexporter.*`` module, and
    ``[PYTHON, "-c", CODE, ...]``; PYTHON the absolute path of a ``python[X.Y][.exe]`` (found, or chosen by
    the user).

    Raises:
        ValueError: any other shape, or a single command string.
        FileNotFoundError: PYTHON does not exist.
    """
    if isinstance(cmd, (str, bytes)):
        raise ValueError("a command must be a list of arguments, not one string")
    argv = list(cmd)
    if len(argv) < 3 or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"not a Python command: {argv!r}")
    python, mode, target = argv[:3]
    if not os.path.isabs(python) or not _PYTHON_NAME.fullmatch(os.path.basename(python)):
        raise ValueError(f"a Python interpreter must be given by its absolute path, not '{python}'")
    if not (mode == "-c" or (mode == "-m" and _MODULES.fullmatch(target))):
        raise ValueError(f"the plugin only runs pip, samexporter or its own probe, not '{mode} {target}'")
    if not os.path.isfile(python):
        raise FileNotFoundError(errno.ENOENT, "no Python interpreter at this path", python)
    return argv


def _pump(stream: IO[str], out: queue.Queue[Optional[str]]) -> None:
    for raw in stream:
        out.put(raw.rstrip("\r\n"))
    out.put(None)


def run_streaming(
    cmd: Sequence[str],
    on_line: Optional[Callable[[str], None]] = None,
    cancelled: Optional[Callable[[], bool]] = None,
    env: Optional[Mapping[str, str]] = None,
) -> Tuple[int, List[str]]:
    """Run ``cmd``, passing each output line (stdout and stderr) to ``on_line``.

    Polls ``cancelled()`` five times a second, also while the process prints
    nothing (pip downloading), and terminates the process when it turns True.

    Returns:
        ``(exit code, all output lines)``.

    Raises:
        ValueError: ``cmd`` is not a command :func:`python_argv` allows.
        OSError: the program could not be started.
        ProcessCancelledError: ``cancelled()`` turned True.
    """
    argv = python_argv(cmd)
    full_env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1", **(env or {}))
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window flashing up on Windows
    proc = subprocess.Popen(  # nosec B603  # argv checked by python_argv: absolute Python path, no shell
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=full_env, creationflags=flags, text=True, encoding="utf-8", errors="replace",
    )
    stdout = cast(IO[str], proc.stdout)  # never None with stdout=PIPE
    lines_q: queue.Queue[Optional[str]] = queue.Queue()
    threading.Thread(target=_pump, args=(stdout, lines_q), daemon=True).start()
    lines: List[str] = []
    while True:
        try:
            line = lines_q.get(timeout=0.2)
        except queue.Empty:
            pass
        else:
            if line is None:
                break
            lines.append(line)
            if on_line:
                on_line(line)
        if cancelled and cancelled():
            proc.terminate()
            proc.wait()
            raise ProcessCancelledError(f"'{os.path.basename(cmd[0])}' was stopped")
    return proc.wait(), lines


def probe_modules(python: str, modules: Sequence[str]) -> Dict[str, bool]:
    """Which ``modules`` another interpreter can import (found with find_spec, not imported).

    Raises:
        SegmentationError: ``python`` cannot be run or gives no answer.
    """
    code = (
        "import importlib.util as u, json, sys; "
        "print(json.dumps({m: u.find_spec(m) is not None for m in sys.argv[1:]}))"
    )
    try:
        status, lines = run_streaming([python, "-c", code, *modules])
        answer = json.loads(lines[-1]) if status == 0 and lines else None
    except (OSError, ValueError) as exc:
        answer, lines = None, [str(exc)]
    if not isinstance(answer, dict):
        raise SegmentationError(f"could not ask '{python}' which packages it has: {' '.join(lines[-3:])}")
    return {m: bool(answer.get(m)) for m in modules}


def install(
    packages: Sequence[str],
    target: os.PathLike,
    python: Optional[str] = None,
    on_line: Optional[Callable[[str], None]] = None,
    cancelled: Optional[Callable[[], bool]] = None,
    proxy: Optional[str] = None,
) -> List[str]:
    """Install ``packages`` (pip specs) into ``target`` and put it on ``sys.path``.

    Runs ``python -m pip`` (default: QGIS's own Python) in a subprocess, streams
    each output line to ``on_line``, and stops pip when ``cancelled()`` turns True.
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
    cmd = pip_command(python, target, packages, constraints, proxy)
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
