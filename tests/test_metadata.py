"""metadata.txt parses, as QGIS and plugins.qgis.org read it, and holds what the plugin repository requires.

metadata.txt is the single source of truth for the name and version: the plugin, the zip name and the
changelogs all read it.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from tools import package

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ["name", "qgisMinimumVersion", "qgisMaximumVersion", "description", "about", "version", "author",
            "email", "repository", "tracker", "homepage", "changelog", "tags", "category", "icon",
            "experimental", "hasProcessingProvider", "supportsQt6"]
URLS = ["repository", "tracker", "homepage"]


def _general() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    assert parser.read(ROOT / "metadata.txt", encoding="utf-8")
    return parser["general"]


def _versions(text: str):
    return [int(p) for p in text.split(".")]


def test_required_keys_present_and_non_empty():
    meta = _general()
    for key in REQUIRED:
        assert meta.get(key, "").strip(), key
    assert meta["qgisMinimumVersion"] == "3.22"
    assert meta["hasProcessingProvider"] == "yes"
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert len(meta["about"]) > 100
    for key in URLS:
        assert re.fullmatch(r"https://[a-z0-9.-]+/\S+", meta[key]), key
    assert meta["tracker"].endswith("/issues") and meta["homepage"] != "http://homepage"
    assert (ROOT / meta["icon"]).is_file()
    assert "/" not in meta["author"]


def test_qgis_4_and_honest_flags():
    """QGIS 4 lists the plugin only with a maximum of 4.x; Qt6 builds of 3.x also want supportsQt6."""
    meta = _general()
    assert _versions(meta["qgisMinimumVersion"]) <= [3, 22] and _versions(meta["qgisMaximumVersion"]) == [4, 99]
    assert meta["supportsQt6"] == "True"
    # plugins.qgis.org reads a flag as true only for "true" or "1": no "yes" here.
    for flag in ("experimental", "deprecated", "supportsQt6"):
        assert meta[flag] in ("True", "False"), flag
    assert meta["deprecated"] == "False"
    assert meta["category"] in ("Raster", "Vector", "Database", "Web")
    tags = [t.strip() for t in meta["tags"].split(",")]
    assert {"segmentation", "sam", "raster"} <= set(tags) and all(tags)


def test_site_parser_reads_it():
    """plugins.qgis.org (and QGIS) read metadata.txt with interpolation on: a bare '%' would break the upload."""
    parser = configparser.ConfigParser()
    parser.optionxform = str
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    assert dict(parser.items("general"))["version"] == _general()["version"]


def test_changelogs_follow_the_version():
    meta = _general()
    version = meta["version"]
    lines = [line.strip() for line in meta["changelog"].strip().splitlines()]
    assert lines[0] == version and len(lines) > 3
    released = re.findall(r"^(\d+\.\d+\.\d+)$", meta["changelog"], re.MULTILINE)
    assert released == sorted(released, key=_versions, reverse=True)  # newest first
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (\d+\.\d+\.\d+)", changelog, re.MULTILINE)
    assert version in headings and set(released) <= set(headings)
    assert headings == sorted(headings, key=_versions, reverse=True)
    assert package.plugin_version(ROOT) == version  # the zip is named after it


def test_layout_and_requirements():
    for path in ["__init__.py", "requirements.txt", "LICENSE", "README.md", "CHANGELOG.md",
                 "ai_segmentation_plugin.py", "ai_segmentation_dockwidget.py", "ai_segmentation_maptool.py",
                 "core/dependency_manager.py", "core/sam_encoder.py", "core/sam_decoder.py",
                 "core/image_utils.py", "core/polygon_exporter.py", "models/README.md"]:
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
        "sys.modules['PyQt5'] = None; import core.sam_encoder, core.sam_decoder, core.families.transforms; "
        "from core.errors import MissingDependencyError\n"
        "try:\n    core.sam_encoder.SamEncoder(r'" + str(ROOT / "tests/fixtures/tiny.encoder.onnx") + "')\n"
        "except MissingDependencyError as e:\n    print('MISSING', e)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "MISSING onnxruntime is not installed" in out.stdout
