"""Starting the only programs the plugin runs: a Python interpreter with pip, samexporter or a probe.

Qt-free. Every command is an argument list checked by :func:`python_argv` (an
absolute path to a ``python[X.Y][.exe]``, never a shell), its output streamed
line by line and cancellable.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
from typing import IO, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, cast

from ..errors import SegmentationError

# The only programs the plugin starts: a Python interpreter running pip or one of samexporter's exporters
# ("-m"), or a short script of the plugin's own ("-c", the find_spec probe). Never a shell.
_MODULES = re.compile(r"pip|samexporter(\.[A-Za-z_][A-Za-z0-9_]*)+")
PYTHON_NAME = re.compile(r"python[0-9.]*(\.exe)?", re.IGNORECASE)


class DependencyInstallError(SegmentationError):
    """pip could not install the packages; the message gives the manual command."""


def command_text(cmd: Sequence[str], platform: str = sys.platform) -> str:
    """``cmd`` as the user would type it in a terminal of ``platform``."""
    if platform.startswith("win"):
        return subprocess.list2cmdline(list(cmd))
    return " ".join(shlex.quote(c) for c in cmd)


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
    if not os.path.isabs(python) or not PYTHON_NAME.fullmatch(os.path.basename(python)):
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
    pump = threading.Thread(target=_pump, args=(stdout, lines_q), daemon=True)
    pump.start()
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
            pump.join(timeout=2)  # let the reader see the pipe's end before it is closed
            stdout.close()
            raise ProcessCancelledError(f"'{os.path.basename(cmd[0])}' was stopped")
    stdout.close()  # an unclosed pipe is a ResourceWarning after every pip run
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


