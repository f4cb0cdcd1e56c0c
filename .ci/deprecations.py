"""Fail when a test log shows a deprecation raised by the plugin's own code.

Usage: python3 .ci/deprecations.py LOG [REPO_ROOT]

Counted as ours (exit 1): Python warnings (DeprecationWarning, PendingDeprecationWarning,
FutureWarning and their subclasses) whose file lies in the repository outside ``.venv``, and
GDAL's own deprecation messages ("Warning 1: ... deprecated / no longer used"), which name no
caller but are printed only when something in the run asks GDAL for a deprecated feature.
Deprecations located in QGIS, GDAL's Python bindings or other installed packages are listed
for information and do not fail. The log must come from pytest run with
``-W default::DeprecationWarning`` (else they are hidden) and ``--capture=sys`` (else GDAL's
stderr is swallowed for passing tests).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List, Tuple

# "  /path/to/file.py:158: DeprecationWarning: message" (pytest's summary and Python's own format).
PY_WARNING = re.compile(r"^\s*(?P<path>\S.*?\.py):(?P<line>\d+): (?P<cat>\w*(?:Deprecation|Future)\w*Warning): "
                        r"(?P<msg>.*)$")
GDAL_DEPRECATION = re.compile(r"^\s*Warning \d+: .*(?:deprecat|no longer used)", re.IGNORECASE)
# pytest -q prints progress dots (and s, F, E, x, X) with C-level stderr right after them.
PROGRESS = re.compile(r"^[.sFExX]+(?=\s*/|Warning \d+: )")


def classify(lines: List[str], root: Path) -> Tuple[List[str], List[str]]:
    """``(ours, others)``: one entry per distinct deprecation, ``ours`` with repository-relative paths."""
    ours: List[str] = []
    others: List[str] = []
    venv = root / ".venv"
    for raw in lines:
        line = PROGRESS.sub("", raw.rstrip("\n"))
        m = PY_WARNING.match(line)
        if m:
            path = Path(m["path"])
            path = (path if path.is_absolute() else root / path).resolve()
            inside = root in path.parents and venv not in path.parents
            where = f"{path.relative_to(root)}:{m['line']}" if inside else f"{path}:{m['line']}"
            entry = f"{where}: {m['cat']}: {m['msg']}"
            bucket = ours if inside else others
        elif GDAL_DEPRECATION.match(line):
            entry, bucket = f"GDAL: {line.strip()}", ours
        else:
            continue
        if entry not in bucket:
            bucket.append(entry)
    return ours, others


def main(argv: List[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    log = Path(argv[1])
    root = Path(argv[2] if len(argv) == 3 else Path(__file__).resolve().parents[1]).resolve()
    ours, others = classify(log.read_text(encoding="utf-8", errors="replace").splitlines(), root)
    for entry in others:
        print(f"deprecation outside the plugin (not failing): {entry}")
    for entry in ours:
        print(f"DEPRECATION FROM THE PLUGIN: {entry}")
    print(f"deprecation check: {len(ours)} from the plugin's code, {len(others)} from elsewhere")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
