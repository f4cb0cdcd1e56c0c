"""QGIS 4 / Qt 6 readiness: scoped enums everywhere in shipped code, and the compatibility module."""

from __future__ import annotations

import configparser
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import qt6_scan  # noqa: E402

BAD = '''
from qgis.PyQt.QtCore import Qt
from qgis.core import Qgis, QgsWkbTypes, QgsTask
from PyQt5.QtWidgets import QDialog
a = Qt.LeftButton
b = Qgis.Warning
c = QgsWkbTypes.PolygonGeometry
d = QgsTask.CanCancel
dialog.exec_()
e = int(Qt.KeyboardModifier.ControlModifier)
'''

GOOD = '''
from qgis.PyQt.QtCore import Qt
from qgis.core import Qgis, QgsTask
a = Qt.MouseButton.LeftButton
b = Qgis.MessageLevel.Warning
d = QgsTask.Flag.CanCancel
dialog.exec()
'''


def test_scanner_finds_every_kind_of_qt6_break():
    found = qt6_scan.scan_source(BAD, "bad.py", qt6_scan.enum_table())
    text = "\n".join(found)
    for expected in ("Qt.MouseButton.LeftButton", "Qgis.MessageLevel.Warning",
                     "QgsWkbTypes.GeometryType.PolygonGeometry", "QgsTask.Flag.CanCancel",
                     "exec_() is gone", "import through qgis.PyQt, not PyQt5", "int() on an enum value"):
        assert expected in text, f"{expected!r} not reported in:\n{text}"
    assert len(found) == 7


def test_scanner_accepts_scoped_code():
    assert qt6_scan.scan_source(GOOD, "good.py", qt6_scan.enum_table()) == []


def test_shipped_code_has_no_qt6_break():
    files = qt6_scan.shipped_files()
    names = {str(f.relative_to(ROOT)) for f in files}
    assert {"ai_segmentation_plugin.py", "ai_segmentation_maptool.py", "core/qgis_compat.py"} <= names
    assert not any(n.startswith(("tests/", "tools/", "bench/")) for n in names)
    findings = qt6_scan.scan(files)
    assert findings == [], "\n".join(findings)


def test_compat_names_are_this_qgis_enum_members():
    from qgis.core import Qgis, QgsWkbTypes

    from core import qgis_compat as compat

    new = hasattr(Qgis, "GeometryType")
    assert (Qgis.GeometryType.Polygon if new else QgsWkbTypes.GeometryType.PolygonGeometry) == compat.GEOMETRY_POLYGON
    assert compat.GEOMETRY_POINT != compat.GEOMETRY_POLYGON
    for name in compat.__all__:
        assert getattr(compat, name) is not None, name


@pytest.mark.parametrize("kind, variant_name", [
    ("string", "String"), ("double", "Double"), ("int", "Int"), ("int64", "LongLong"), ("datetime", "DateTime"),
])
def test_make_field_types(kind, variant_name):
    from qgis.PyQt.QtCore import QVariant

    from core.qgis_compat import make_field

    field = make_field("f", kind)
    assert field.name() == "f"
    # QgsField.type() is the QVariant type on every version, whichever constructor was used.
    assert field.type() == getattr(QVariant, variant_name)


def test_key_commands_match_without_int_flags(qgis_app):
    from qgis.PyQt.QtCore import QEvent, Qt
    from qgis.PyQt.QtGui import QKeyEvent

    from tools.plugin_package import plugin_module

    key_command = plugin_module("ai_segmentation_maptool").key_command

    def press(key, mods=Qt.KeyboardModifier.NoModifier):
        return key_command(QKeyEvent(QEvent.Type.KeyPress, key, mods))

    assert press(Qt.Key.Key_S) == "save"
    assert press(Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier) == "undo"
    assert press(Qt.Key.Key_Z) is None
    assert press(Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier) is None
    assert press(Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier) == "previous_mask"
    assert press(Qt.Key.Key_Tab) == "next_mask"
    # Keypad keys carry KeypadModifier, which is not a command modifier.
    assert press(Qt.Key.Key_Escape, Qt.KeyboardModifier.KeypadModifier) == "clear"


def test_metadata_declares_qgis_3_22_to_4_99():
    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    assert meta["general"]["qgisMinimumVersion"] == "3.22"
    assert meta["general"]["qgisMaximumVersion"] == "4.99"
