"""metadata.txt parses and holds what the QGIS plugin repository requires."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ["name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
            "repository", "tracker", "hasProcessingProvider", "icon"]


def _general() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    assert parser.read(ROOT / "metadata.txt", encoding="utf-8")
    return parser["general"]


def test_required_keys_present_and_non_empty():
    meta = _general()
    for key in REQUIRED:
        assert meta.get(key, "").strip(), key
    assert meta["qgisMinimumVersion"] == "3.22"
    assert meta["hasProcessingProvider"] == "yes"
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert len(meta["about"]) > 100
    assert meta["repository"].startswith("https://") and meta["tracker"].startswith("https://")
    assert (ROOT / meta["icon"]).is_file()


def test_layout_and_requirements():
    for path in ["__init__.py", "requirements.txt", "LICENSE", "README.md", "ai_segmentation_plugin.py",
                 "ai_segmentation_dockwidget.py", "ai_segmentation_maptool.py", "core/dependency_manager.py",
                 "core/sam_encoder.py", "core/sam_decoder.py", "core/image_utils.py",
                 "core/polygon_exporter.py", "models/README.md"]:
        assert (ROOT / path).is_file(), path
    reqs = (ROOT / "requirements.txt").read_text().split()
    assert reqs == ["onnxruntime>=1.15.0", "numpy>=1.20.0"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_core_engine_imports_without_qgis_or_onnxruntime():
    """The engine modules load without QGIS, Qt or onnxruntime (it is imported lazily)."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['onnxruntime'] = None; sys.modules['qgis'] = None; "
        "sys.modules['PyQt5'] = None; import core.sam_encoder, core.sam_decoder, core.transforms; "
        "from core.errors import MissingDependencyError\n"
        "try:\n    core.sam_encoder.SamEncoder(r'" + str(ROOT / "tests/fixtures/tiny.encoder.onnx") + "')\n"
        "except MissingDependencyError as e:\n    print('MISSING', e)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "MISSING onnxruntime is not installed" in out.stdout
