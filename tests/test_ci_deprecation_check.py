"""The CI's deprecation check (.ci/deprecations.py) fails on the plugin's deprecations, and only on them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "deprecations.py"


def load():
    spec = importlib.util.spec_from_file_location("ci_deprecations", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(log_text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    log = tmp_path / "pytest.log"
    log.write_text(log_text, encoding="utf-8")
    return subprocess.run([sys.executable, str(SCRIPT), str(log), str(ROOT)], capture_output=True, text=True)


THIRD_PARTY = f"""\
tests/test_plugin.py::test_load_shows_toolbar_button_and_raster_menu_entry
  /usr/lib/python3/dist-packages/qgis/utils.py:294: DeprecationWarning: codecs.open() is deprecated.
    with codecs.open(metadataFile, "r", "utf8") as f:
  {ROOT}/.venv/lib/python3.14/site-packages/onnx/helper.py:9: DeprecationWarning: old
  /usr/lib/python3/dist-packages/osgeo/gdal.py:596: FutureWarning: Neither gdal.UseExceptions() nor ...
Warning 1: the file has no overviews
ERROR 4: `missing.tif' does not exist in the file system
380 passed, 3 warnings in 200.00s
"""


def test_third_party_deprecations_and_plain_gdal_warnings_pass(tmp_path):
    out = run(THIRD_PARTY, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 from the plugin's code, 3 from elsewhere" in out.stdout


def test_a_deprecation_in_plugin_code_fails_with_its_place(tmp_path):
    log = THIRD_PARTY + (
        f"tests/test_processing.py::test_models_default_to_the_models_folder\n"
        f"  {ROOT}/processing_provider/common.py:158: DeprecationWarning: QgsField constructor is deprecated\n"
        f"    fields.append(QgsField(name, _QVARIANT[kind]))\n"
        f"  {ROOT}/tests/test_x.py:12: PendingDeprecationWarning: soon\n")
    out = run(log, tmp_path)
    assert out.returncode == 1
    assert ("DEPRECATION FROM THE PLUGIN: processing_provider/common.py:158: DeprecationWarning: "
            "QgsField constructor is deprecated") in out.stdout
    assert "tests/test_x.py:12: PendingDeprecationWarning: soon" in out.stdout
    assert "2 from the plugin's code, 3 from elsewhere" in out.stdout


def test_gdal_deprecation_messages_fail_once_each():
    ours, others = load().classify([
        "..s.Warning 1: DeprecationWarning: 'Memory' driver is deprecated since GDAL 3.11. Use 'MEM' onwards.",
        "Warning 1: Starting with GDAL 3.7, PIXELTYPE=SIGNEDBYTE is no longer used to signal signed 8-bit",
        "Warning 1: Starting with GDAL 3.7, PIXELTYPE=SIGNEDBYTE is no longer used to signal signed 8-bit",
        "Warning 1: Starting with GDAL 3.7, PIXELTYPE=SIGNEDBYTE is no longer used to signal signed 8-bit",
    ], ROOT)
    assert others == []
    assert ours == [
        "GDAL: Warning 1: DeprecationWarning: 'Memory' driver is deprecated since GDAL 3.11. Use 'MEM' onwards.",
        "GDAL: Warning 1: Starting with GDAL 3.7, PIXELTYPE=SIGNEDBYTE is no longer used to signal signed 8-bit",
    ]
