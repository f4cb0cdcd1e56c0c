"""Find code that QGIS 4 (Qt 6, PyQt6) would break, as QGIS's pyqt5_to_pyqt6 checker does.

The enum table is introspected from the PyQt5 and PyQGIS that are installed:
``Class.Member`` is reported wherever ``Member`` is also reachable as
``Class.Enum.Member`` or ``Qgis.Enum.Member`` (PyQt6 and QGIS 4 only have the
scoped form). Also reported: ``exec_``, imports from ``PyQt5`` or ``PyQt4``,
and ``int(...)`` on an enum value.

    python tools/qt6_scan.py [PATH ...]     # default: the shipped code; exit 1 on findings
"""

from __future__ import annotations

import ast
import enum
import inspect
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {"tests", "bench", "tools", "scripts", "docs", ".ci", ".venv", ".bench", ".demo", "dist"}
EnumTable = Dict[Tuple[str, str], Set[str]]


def shipped_files(root: Path = ROOT) -> List[Path]:
    """Every ``.py`` file of the plugin as users install it."""
    return sorted(p for p in root.rglob("*.py")
                  if not (set(p.relative_to(root).parts[:-1]) & NOT_SHIPPED or p.name.startswith(".")))


def _is_enum_member(value: object) -> bool:
    return isinstance(value, enum.Enum) or type(type(value)).__name__ in ("enumtype", "EnumType")


def _classes(module: object) -> Iterator[Tuple[str, type]]:
    for name, value in vars(module).items():
        if inspect.isclass(value) and not name.startswith("_"):
            yield name, value


def _scoped_names(cls: type, member: str, qgis_cls: type) -> Set[str]:
    """Where ``cls.member`` is also reachable as ``cls.Enum.member`` or ``Qgis.Enum.member``."""
    try:
        value = getattr(cls, member)
    except Exception:  # sip raises odd errors for some attributes
        return set()
    if not _is_enum_member(value):
        return set()
    etype, ename = type(value), type(value).__name__
    if member == ename:
        return set()
    found = set()
    if getattr(cls, ename, None) is etype:
        found.add(f"{cls.__name__}.{ename}")
    if getattr(qgis_cls, ename, None) is etype:
        found.add(f"Qgis.{ename}")
    return found


@lru_cache(maxsize=1)
def enum_table() -> EnumTable:
    """``(class, member) -> {"Class.Enum", ...}`` for every unscoped enum alias in PyQt5 and PyQGIS."""
    from qgis import core, gui
    from qgis.PyQt import QtCore, QtGui, QtNetwork, QtWidgets

    table: EnumTable = {}
    for module in (QtCore, QtGui, QtWidgets, QtNetwork, core, gui):
        for name, cls in _classes(module):
            for member in dir(cls):
                if member.startswith("_"):
                    continue
                scoped = _scoped_names(cls, member, core.Qgis)
                if scoped:
                    table.setdefault((name, member), set()).update(scoped)
    return table


def _parents(tree: ast.AST) -> Dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def scan_source(source: str, filename: str, table: EnumTable) -> List[str]:
    """Findings in one file, ``"file:line:col message"``."""
    tree = ast.parse(source, filename)
    parents = _parents(tree)
    out = []
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', 0)}:{getattr(node, 'col_offset', 0)}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            key = (node.value.id, node.attr)
            if key in table and not isinstance(parents.get(node), ast.Attribute):
                fix = " or ".join(f"{s}.{node.attr}" for s in sorted(table[key]))
                out.append(f"{where} unscoped enum {node.value.id}.{node.attr}: use {fix}")
        if isinstance(node, ast.Attribute) and node.attr == "exec_":
            out.append(f"{where} exec_() is gone in PyQt6: use exec()")
        if isinstance(node, ast.FunctionDef) and node.name == "exec_":
            out.append(f"{where} def exec_: name it exec")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if any(n.split(".")[0] in ("PyQt5", "PyQt4", "PyQt6", "sip") for n in names):
                out.append(f"{where} import through qgis.PyQt, not {names[0]}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "int"
                and len(node.args) == 1 and _looks_like_enum(node.args[0], table)):
            out.append(f"{where} int() on an enum value: PyQt6 enums are Python enums")
    return out


def _looks_like_enum(node: ast.AST, table: EnumTable) -> bool:
    """``Class.Enum.Member`` or ``Class.Member`` of the table, or a call to ``.modifiers()``/``.buttons()``."""
    if isinstance(node, ast.Attribute):
        chain = []
        while isinstance(node, ast.Attribute):
            chain.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            chain.append(node.id)
            chain.reverse()
            return (chain[0], chain[-1]) in table or any((chain[0], m) in table for m in chain[1:])
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
        "modifiers", "buttons", "button", "type", "flags", "state")


def scan(paths: Iterable[Path]) -> List[str]:
    table = enum_table()
    findings = []
    for path in paths:
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        findings += scan_source(path.read_text(encoding="utf-8"), str(rel), table)
    return findings


def main(argv: List[str]) -> int:
    paths = [Path(a).resolve() for a in argv] or shipped_files()
    files = [f for p in paths for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]
    findings = scan(files)
    print("\n".join(findings) if findings else f"no Qt 6 issue in {len(files)} files")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
