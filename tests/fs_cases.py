"""Running a snippet where file permissions and disk space are real, for the file-system tests.

Root ignores permission bits: a child run through ``setpriv`` without CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH obeys them. A full disk is a small (512 KiB) tmpfs mounted in a private user and
mount namespace (``unshare -rm``), gone when the child exits. The child prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional, Sequence, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
_DAC = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")

HEAD = """\
import json, os, sys
sys.path[:0] = [{root!r}, {tests!r}]
"""
QGIS_HEAD = """\
from qgis.core import QgsApplication
APP = QgsApplication([], False)
APP.initQgis()
"""
PROCESSING_HEAD = """\
sys.path.insert(0, "/usr/share/qgis/python/plugins")
from processing.core.Processing import Processing
Processing.initialize()
import processing
from qgis.core import QgsProcessingException
from tools.plugin_package import plugin_module
PROVIDER = plugin_module("processing_provider.provider").AISegmentationProvider()
QgsApplication.processingRegistry().addProvider(PROVIDER)

def run(alg, params):
    try:
        processing.run("aisegmentation:" + alg, params)
        return "ok"
    except QgsProcessingException as exc:
        return "error: " + str(exc)
"""


def _works(prefix: Sequence[str]) -> bool:
    try:
        return subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def permissions_apply() -> Tuple[str, ...]:
    """Command prefix under which a child obeys permission bits; skips the test where none exists."""
    if os.geteuid() != 0:
        return ()
    if not _works(_DAC):
        pytest.skip("root without setpriv or CAP_SETPCAP: permission bits cannot be made to apply")
    return _DAC


def small_disk(folder: Path, size: str = "512k") -> Tuple[str, ...]:
    """Command prefix that mounts a tmpfs of ``size`` (512 KiB) on ``folder`` for the child only (or skips)."""
    if not _works(("unshare", "-rm")):
        pytest.skip("no user namespaces: no private tmpfs")
    return ("unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={size} tmpfs "$0" && exec "$@"', str(folder))


def run_script(body: str, cwd: Path, prefix: Sequence[str] = (), qgis: bool = False, processing: bool = False,
               env: Optional[dict] = None, timeout: float = 180) -> dict:
    """Run ``body`` in a fresh Python (with QGIS, and Processing with this provider, if asked);
    return the JSON it prints last."""
    head = HEAD.format(root=str(ROOT), tests=str(ROOT / "tests"))
    head += QGIS_HEAD if qgis or processing else ""
    head += PROCESSING_HEAD if processing else ""
    script = cwd / "fs_case.py"
    script.write_text(head + textwrap.dedent(body), encoding="utf-8")
    child_env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
                     XDG_CONFIG_HOME=str(cwd / "config"), **(env or {}))
    out = subprocess.run([*prefix, sys.executable, str(script)], capture_output=True, text=True, timeout=timeout,
                         env=child_env, cwd=str(cwd))
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"rc={out.returncode}\nstdout={out.stdout[-3000:]}\nstderr={out.stderr[-3000:]}"
    return json.loads(lines[-1])
