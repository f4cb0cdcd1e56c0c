"""Checking a Python interpreter the user chose to install packages with.

Qt-free. Packages installed for another Python version do not load in QGIS, and a
launcher script (a pyenv or asdf shim) runs whichever Python its configuration
names: both are refused. An interpreter of the right version outside QGIS's own
prefix is allowed with a warning (it may be a matching install elsewhere).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple

from .process import PYTHON_NAME, DependencyInstallError, run_streaming

# Printed by the chosen interpreter: what it is, and whether it has pip (found, not imported).
_PROBE = (
    "import importlib.util as u, json, sys; print(json.dumps({'version': list(sys.version_info[:3]), "
    "'prefix': sys.prefix, 'base_prefix': sys.base_prefix, 'pip': u.find_spec('pip') is not None}))"
)


@dataclass(frozen=True)
class PythonInfo:
    """A checked interpreter.

    Attributes:
        path: the interpreter's path, as chosen.
        version: its ``(major, minor, micro)``.
        prefix: its ``sys.prefix``.
        warning: a line for the user when it is not under QGIS's prefix, else None.
    """

    path: str
    version: Tuple[int, int, int]
    prefix: str
    warning: Optional[str]

    def describe(self) -> str:
        """One line for the user, e.g. ``"/usr/bin/python3: Python 3.11.2 in /usr"``."""
        return f"{self.path}: Python {'.'.join(map(str, self.version))} in {self.prefix}"


def is_launcher(path: str) -> bool:
    """Whether ``path`` is a script started through a ``#!`` line (a pyenv or asdf shim), not a program."""
    try:
        with open(os.path.realpath(path), "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def _under(path: str, prefixes: Sequence[str]) -> bool:
    real = os.path.realpath(path)
    for prefix in {os.path.realpath(p) for p in prefixes}:
        try:
            if os.path.commonpath([real, prefix]) == prefix:
                return True
        except ValueError:  # another drive (Windows)
            continue
    return False


def judge_python(path: str, answer: Mapping[str, Any], version: Tuple[int, int],
                 prefixes: Sequence[str]) -> PythonInfo:
    """Decide on ``path`` from what its probe printed (``answer``).

    Args:
        path: the interpreter.
        answer: the probe's JSON: ``version`` (list of ints), ``prefix``, ``base_prefix``, ``pip`` (bool).
        version: QGIS's Python ``(major, minor)``.
        prefixes: QGIS's ``sys.prefix``, ``sys.base_prefix``...

    Raises:
        DependencyInstallError: another ``major.minor``, or no pip.
    """
    found = tuple(int(v) for v in answer["version"][:3])
    if found[:2] != tuple(version):
        raise DependencyInstallError(
            f"'{path}' is Python {'.'.join(map(str, found))}, but QGIS runs Python {version[0]}.{version[1]}: "
            f"packages installed with it would not load in QGIS. Choose a Python {version[0]}.{version[1]} "
            "interpreter, preferably QGIS's own."
        )
    if not answer.get("pip"):
        raise DependencyInstallError(
            f"'{path}' has no pip, so it cannot install packages: choose another interpreter, or install pip "
            f"into it first ('{path} -m ensurepip')."
        )
    prefix, base = str(answer["prefix"]), str(answer.get("base_prefix") or answer["prefix"])
    own = _under(path, prefixes) or any(_under(p, prefixes) for p in (prefix, base))
    warning = None if own else (
        f"'{path}' is not the Python of this QGIS (it lives in {prefix}; QGIS's is in {prefixes[0]}). Packages "
        "it installs load only if it matches the Python QGIS was built with: use it only if you know it does."
    )
    return PythonInfo(path, (found[0], found[1], found[2]), prefix, warning)


def check_python(path: str, version: Tuple[int, int] = (sys.version_info[0], sys.version_info[1]),
                 prefixes: Optional[Sequence[str]] = None) -> PythonInfo:
    """Run ``path`` once to learn its version and prefix, and judge it with :func:`judge_python`.

    Args:
        path: absolute path of a ``python[X.Y][.exe]`` program.
        version: QGIS's Python ``(major, minor)``.
        prefixes: QGIS's prefixes (default: this process's ``sys.prefix``, ``sys.base_prefix``,
            ``sys.exec_prefix``).

    Raises:
        DependencyInstallError: not a Python program, a launcher script, not runnable, another version, no pip.
    """
    if prefixes is None:
        prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix]
    if not os.path.isabs(path) or not PYTHON_NAME.fullmatch(os.path.basename(path)):
        raise DependencyInstallError(
            f"'{path}' is not a Python interpreter: choose a program named python, python3 or python3.X "
            "(python.exe on Windows), given by its full path."
        )
    if is_launcher(path):
        raise DependencyInstallError(
            f"'{path}' is a launcher script (e.g. a pyenv or asdf shim) that runs whichever Python its settings "
            "name, not a Python interpreter: choose the program it runs (e.g. the path 'pyenv which python3' prints)."
        )
    try:
        status, lines = run_streaming([path, "-c", _PROBE])
        answer = json.loads(lines[-1]) if status == 0 and lines else None
    except (OSError, ValueError) as exc:
        answer, lines = None, [str(exc)]
    if not isinstance(answer, dict) or not isinstance(answer.get("version"), list):
        raise DependencyInstallError(f"'{path}' did not run as a Python interpreter: {' '.join(lines[-3:])}")
    return judge_python(path, answer, version, prefixes)
