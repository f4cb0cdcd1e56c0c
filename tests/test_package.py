"""The plugin zip (tools/package.py) and its checker (tools/check_package.py): lean, complete, deterministic,
accepted by the plugins.qgis.org rules, and importable in QGIS from nothing but its own files."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_processing import ALGORITHMS

from tools import check_package as cp
from tools import package

ROOT = Path(__file__).resolve().parents[1]
DEV = ("tests/", "bench/", "tools/", "docs/", "scripts/", ".ci/", "dist/")
HAS_SCANNERS = all(importlib.util.find_spec(m) for m in ("bandit", "detect_secrets"))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return package.build(ROOT, tmp_path_factory.mktemp("dist"))


def _files(zip_path: Path) -> dict:
    with zipfile.ZipFile(zip_path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}


def test_zip_is_lean_complete_and_named_after_the_version(built):
    assert built.name == f"ai_segmentation-{package.plugin_version(ROOT)}.zip"
    files = _files(built)
    rel = {n.split("/", 1)[1] for n in files}
    assert all(n.startswith("ai_segmentation/") for n in files)
    tracked = package.tracked_files(ROOT)
    # Every tracked Python module of the plugin is shipped, byte for byte as in the working tree.
    code = [f for f in tracked if f.endswith(".py") and not f.startswith(DEV)]
    assert code and set(code) <= rel
    for f in rel:
        assert files[f"ai_segmentation/{f}"] == (ROOT / f).read_bytes(), f
    assert {"metadata.txt", "LICENSE", "__init__.py", "models/README.md", "resources/icons/icon.svg",
            "core/families/graphs/postprocess_masks.onnx"} <= rel
    # ...and nothing for development.
    assert not [f for f in rel if f.startswith(DEV) or "/." in f"/{f}" or f.endswith((".pyc", ".npz"))]
    assert not {"README.md", "pytest.ini", "ruff.toml", "requirements-dev.txt", "CHANGELOG.md"} & rel
    assert built.stat().st_size < 1_000_000 and len(rel) < 150


def test_build_is_deterministic_and_leaves_one_zip(built, tmp_path):
    (tmp_path / "ai_segmentation-0.0.1.zip").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("kept")
    again = package.build(ROOT, tmp_path)
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(built.read_bytes()).digest()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([again.name, "notes.txt"])
    with zipfile.ZipFile(again) as zf:
        assert zf.testzip() is None
        assert all((i.external_attr >> 16) & 0o111 == 0 for i in zf.infolist() if not i.is_dir())


def test_only_listed_runtime_files_are_selected():
    graph = "core/families/graphs/g.onnx"
    chosen = package.select(["__init__.py", "metadata.txt", "LICENSE", "models/README.md", "core/a.py", graph,
                             "tests/fixtures/tiny.encoder.onnx", "tools/x.py", "README.md"])
    assert chosen == ["LICENSE", "__init__.py", "core/a.py", graph, "metadata.txt", "models/README.md"]
    with pytest.raises(package.PackageError, match=r"core/weights\.bin"):
        package.select(["__init__.py", "metadata.txt", "LICENSE", "models/README.md", "core/weights.bin"])
    with pytest.raises(package.PackageError, match="LICENSE"):
        package.select(["__init__.py", "metadata.txt", "models/README.md"])


def test_clean_checkout_builds_without_untracked_files(tmp_path):
    """scripts/package.sh in a fresh clone, with untracked junk in the plugin's folders: not shipped."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-local", str(ROOT), str(clone)], check=True, timeout=120)
    (clone / "core" / "__pycache__").mkdir()
    (clone / "core" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (clone / "core" / "scratch.py").write_text("print('junk')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    out = subprocess.run(["bash", "scripts/package.sh"], cwd=clone, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    (zip_path,) = (clone / "dist").iterdir()
    rel = {n.split("/", 1)[1] for n in _files(zip_path)}
    assert rel == set(package.select(package.tracked_files(clone)))
    assert "core/scratch.py" not in rel and not [f for f in rel if "__pycache__" in f]
    assert cp.upload_rules(zip_path) == [] and cp.content_rules(zip_path, clone) == []


def test_zip_passes_the_upload_rules_and_file_analysis(built, tmp_path):
    assert cp.upload_rules(built) == []
    assert cp.content_rules(built, ROOT) == []
    with zipfile.ZipFile(built) as zf:
        zf.extractall(tmp_path)
    assert cp.suppression_rules(tmp_path) == []


def _variant(good: Path, dest: Path, drop=(), add=None, edit=None, modes=None) -> Path:
    """A copy of the zip ``good`` with members dropped, added, edited (name -> text function) or chmodded."""
    add, edit, modes = add or {}, edit or {}, modes or {}
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename in drop:
                continue
            data = src.read(info)
            if info.filename in edit:
                data = edit[info.filename](data.decode()).encode()
            if info.filename in modes:
                info.external_attr = modes[info.filename] << 16
            out.writestr(info, data)
        for name, data in add.items():
            out.writestr(name, data)
    return dest


def _rules(zip_path: Path, repo=None) -> set:
    return {f.rule for f in cp.upload_rules(zip_path) + cp.content_rules(zip_path, repo)}


def _meta(old: str, new: str):
    return {"ai_segmentation/metadata.txt": lambda text: text.replace(old, new, 1)}


@pytest.mark.parametrize("change, rules", [
    ({"add": {"other/__init__.py": ""}}, {"UPLOAD_FOLDER"}),
    ({"add": {"ai_segmentation/core/__pycache__/a.cpython-311.pyc": "x"}}, {"UPLOAD_PYC", "UPLOAD_FORBIDDEN_DIR"}),
    ({"add": {"ai_segmentation/.git/config": "x"}}, {"UPLOAD_FORBIDDEN_DIR", "FILE_HIDDEN"}),
    ({"drop": ["ai_segmentation/LICENSE"]}, {"UPLOAD_LICENSE"}),
    ({"drop": ["ai_segmentation/__init__.py"]}, {"UPLOAD_INIT"}),
    ({"edit": _meta("about=", "about=100% ")}, {"UPLOAD_METADATA"}),
    ({"edit": _meta("qgisMaximumVersion=4.99", "")}, {"UPLOAD_METADATA"}),
    ({"edit": _meta("tracker=https://github.com/ai-segmentation/qgis-ai-segmentation/issues", "tracker=http://bugs")},
     {"UPLOAD_URL"}),
    ({"edit": _meta("supportsQt6=True", "supportsQt6=yes")}, {"UPLOAD_FLAG"}),
    ({"edit": _meta("icon=resources/icons/icon.svg", "icon=icon.png")}, {"UPLOAD_ICON"}),
    ({"edit": _meta("version=", "version=v")}, {"UPLOAD_VERSION"}),
    ({"edit": _meta("author=AI Segmentation contributors", "author=a/b")}, {"UPLOAD_AUTHOR"}),
    ({"modes": {"ai_segmentation/core/raster/geo.py": 0o100755}}, {"FILE_EXECUTABLE"}),
    ({"add": {"ai_segmentation/tests/test_x.py": "", "ai_segmentation/.bandit": "[bandit]"}},
     {"CONTENT_DEV", "FILE_HIDDEN", "FILE_SCANNER_CONFIG"}),
    ({"add": {"ai_segmentation/lib/native.so": "x", "ai_segmentation/core/bad.py": "def f(:\n"}},
     {"FILE_SUSPICIOUS", "E999"}),
])
def test_checker_catches_each_broken_rule(built, tmp_path, change, rules):
    assert _rules(_variant(built, tmp_path / "bad.zip", **change)) == rules


def test_checker_compares_with_the_repository_and_size(built, tmp_path, monkeypatch):
    extra = _variant(built, tmp_path / "extra.zip", drop=["ai_segmentation/core/raster/geo.py"],
                     add={"ai_segmentation/core/extra.py": ""})
    found = {(f.rule, f.where) for f in cp.content_rules(extra, ROOT)}
    assert found == {("CONTENT_EXTRA", "ai_segmentation/core/extra.py"),
                     ("CONTENT_MISSING", "ai_segmentation/core/raster/geo.py")}
    monkeypatch.setattr(cp, "MAX_BYTES", built.stat().st_size - 1)
    assert {f.rule for f in cp.upload_rules(built)} == {"UPLOAD_SIZE"}


def test_suppression_comments_need_rule_ids_and_a_reason(tmp_path):
    (tmp_path / "m.py").write_text(
        "import subprocess\n"
        "a = 1  # nosec\n"
        "b = 2  # nosec B603 because\n"
        "c = 3  # nosec B603  # argv list of an absolute path, no shell\n"
        "d = '# nosec inside a string is not a comment'\n"
        "e = 'x'  # pragma: allowlist secret\n"
        "f = 'y'  # pragma: allowlist secret - a published SHA256, not a credential\n")
    found = [(f.rule, f.where) for f in cp.suppression_rules(tmp_path)]
    assert found == [("NOSEC_FORM", "m.py:2"), ("NOSEC_FORM", "m.py:3"), ("ALLOWLIST_FORM", "m.py:6")]


@pytest.mark.skipif(not HAS_SCANNERS, reason="bandit and detect-secrets are not installed (CI installs them)")
def test_scan_finds_what_the_site_blocks(tmp_path):
    """bandit and detect-secrets as the site runs them, on a plugin with one finding of each kind."""
    tree = tmp_path / "ai_segmentation"
    tree.mkdir()
    digest = hashlib.sha256(b"model").hexdigest()
    (tree / "__init__.py").write_text(
        "import subprocess\n\n\n"
        "def f(x):\n"
        "    assert x\n"
        "    subprocess.run('ls ' + x, shell=True)\n"
        "    subprocess.run(['/usr/bin/ls', x])  # nosec B603  # fixed absolute program, argument list\n"
        "    return x  # nosec B101  # nothing to hide here: stale\n"
        f"SHA = '{digest}'\n")
    (tree / "catalogue.tsv").write_text(f"vit_b\t{digest}\n")  # data file: not a secret to the scanner
    bandit = {(f.rule, f.where) for f in cp.bandit_rules(tmp_path)}
    assert bandit == {("B101", "ai_segmentation/__init__.py:5"), ("B602", "ai_segmentation/__init__.py:6"),
                      ("NOSEC_STALE", "ai_segmentation/__init__.py:8")}
    secrets = {(f.rule, f.where) for f in cp.secrets_rules(tmp_path)}
    assert secrets == {("HexHighEntropyString", "ai_segmentation/__init__.py:9")}


def test_zip_imports_and_runs_in_qgis_from_its_own_files(built, tmp_path, tiny_paths):
    """Extracted alone, the plugin imports every module, registers its provider and segments, in a fresh
    Python whose path has no checkout: every module it needs at run time is in the zip."""
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(built) as zf:
        zf.extractall(plugins)
        modules = sorted("ai_segmentation." + n[len("ai_segmentation/"):-3].replace("/", ".").removesuffix(".__init__")
                         for n in zf.namelist() if n.endswith(".py") and n != "ai_segmentation/__init__.py")
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    args = {"plugins": str(plugins), "repo": str(ROOT), "modules": modules, "work": str(tmp_path),
            "encoder": str(tiny_paths["encoder_preproc"]), "decoder": str(tiny_paths["decoder"])}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(QT_QPA_PLATFORM="offscreen", XDG_CACHE_HOME=str(tmp_path / "cache"),
               QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"))
    out = subprocess.run([sys.executable, str(script), json.dumps(args)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["outside"] == [] and report["from_checkout"] == []
    assert report["imported"] == len(modules) > 40
    assert report["algorithms"] == ALGORITHMS
    assert report["version"] == package.plugin_version(ROOT) and report["icon"]
    assert report["features"] == 1 and report["area"] > 0
    shutil.rmtree(plugins)


PROBE = '''
import importlib, json, os, sys
args = json.loads(sys.argv[1])
repo, venv = os.path.realpath(args["repo"]) + os.sep, os.path.realpath(sys.prefix) + os.sep
sys.path.insert(0, args["plugins"])
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback, QgsVectorLayer
from osgeo import gdal, ogr, osr
import numpy as np
app = QgsApplication([], False)
app.initQgis()
import ai_segmentation
for name in args["modules"]:
    importlib.import_module(name)
plugin = ai_segmentation.classFactory(None)
plugin.initProcessing()
from ai_segmentation.toolbelt import metadata
srs = osr.SpatialReference()
srs.ImportFromEPSG(32633)
raster, prompts, out = (os.path.join(args["work"], n) for n in ("r.tif", "p.gpkg", "out.gpkg"))
ds = gdal.GetDriverByName("GTiff").Create(raster, 200, 150, 3, gdal.GDT_Byte)
ds.SetGeoTransform((500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5))
ds.SetProjection(srs.ExportToWkt())
for i in range(3):
    ds.GetRasterBand(i + 1).WriteArray(np.random.default_rng(i).integers(0, 255, (150, 200), dtype=np.uint8))
ds = None
src = ogr.GetDriverByName("GPKG").CreateDataSource(prompts)
layer = src.CreateLayer("points", srs, ogr.wkbPoint)
f = ogr.Feature(layer.GetLayerDefn())
f.SetGeometry(ogr.CreateGeometryFromWkt("POINT(500050 4999960)"))
layer.CreateFeature(f)
layer = src = f = None
alg = QgsApplication.processingRegistry().algorithmById("aisegmentation:segment_prompts").create()
params = {"INPUT": raster, "PROMPTS": prompts + "|layername=points", "ENCODER": args["encoder"],
          "DECODER": args["decoder"], "OUTPUT": out}
context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
results, ok = alg.run(params, context, feedback)
del context
if not ok:
    raise SystemExit("segment_prompts failed")
layer = QgsVectorLayer(out, "out", "ogr")
features, area = layer.featureCount(), sum(f.geometry().area() for f in layer.getFeatures())
del layer
files = [os.path.realpath(m.__file__) for m in list(sys.modules.values()) if getattr(m, "__file__", None)]
plugin_files = [os.path.realpath(m.__file__) for n, m in list(sys.modules.items())
                if n.startswith("ai_segmentation") and getattr(m, "__file__", None)]
print(json.dumps({
    "imported": sum(1 for n in args["modules"] if n in sys.modules),
    "outside": [f for f in plugin_files if not f.startswith(os.path.realpath(args["plugins"]) + os.sep)],
    "from_checkout": sorted(f for f in files if f.startswith(repo) and not f.startswith(venv)),
    "algorithms": sorted(a.id() for a in plugin.provider.algorithms()), "version": metadata.plugin_version(),
    "icon": os.path.isfile(metadata.icon_path()) and metadata.icon_path().startswith(args["plugins"]),
    "features": features, "area": area,
}))
app.exitQgis()
'''
