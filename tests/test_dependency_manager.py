"""Dependency detection, the private package folder, and a real pip install through the plugin's code."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import dependency_manager as dm

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_sys_path(monkeypatch, tmp_path):
    """Any folder a test adds to sys.path (and any module it imports from there) is gone afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def test_detects_installed_packages_with_their_versions():
    found = {s.requirement.name: s for s in dm.detect()}
    assert found["numpy"].found and found["numpy"].version == np.__version__
    assert found["numpy"].ok
    assert found["onnxruntime"].version == importlib.metadata.version("onnxruntime")
    assert found["onnxruntime"].describe().startswith(f"onnxruntime: {found['onnxruntime'].version} (")


def test_missing_and_too_old_packages():
    absent = dm.Requirement("no-such-package-xq", "no_such_package_xq", None, "testing")
    old = dm.Requirement("numpy", "numpy", "999.0", "testing")
    optional = dm.Requirement("no-such-optional-xq", "no_such_optional_xq", None, "extras", required=False)
    statuses = dm.detect([absent, old, optional])
    assert [(s.found, s.version is not None, s.ok) for s in statuses] == [
        (False, False, False), (True, True, False), (False, False, False)]
    assert statuses[0].describe() == "no-such-package-xq: missing (testing)"
    assert "too old (needs >= 999.0)" in statuses[1].describe()
    assert dm.missing(statuses) == [absent, old]
    assert dm.missing(statuses, include_optional=True) == [absent, old, optional]
    assert old.pip_spec == "numpy>=999.0" and absent.pip_spec == "no-such-package-xq"


def test_detection_does_not_import_onnxruntime():
    code = (
        "import sys; from core.dependency_manager import detect; s = detect(); "
        "print(all(x.found for x in s if x.requirement.required), 'onnxruntime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_version_tuple_keeps_the_numeric_release():
    assert dm.version_tuple("1.24.2") == (1, 24, 2)
    assert dm.version_tuple("1.24.2+dfsg") == (1, 24, 2)
    assert dm.version_tuple("2.0.0rc1") == (2, 0, 0)
    assert dm.version_tuple("1.15.0") > dm.version_tuple("1.9.9")


def test_private_folder_is_per_python_version_in_the_profile(tmp_path):
    assert dm.deps_dir(tmp_path, (3, 9)) == tmp_path / "python" / "ai_segmentation_deps" / "py3.9"
    here = dm.deps_dir(tmp_path)
    assert here.name == f"py{sys.version_info[0]}.{sys.version_info[1]}"


def test_add_to_sys_path_appends_existing_folders_once(tmp_path, clean_sys_path):
    assert not dm.add_to_sys_path(tmp_path / "absent")
    assert str(tmp_path / "absent") not in sys.path
    assert dm.add_to_sys_path(tmp_path)
    assert dm.add_to_sys_path(tmp_path)
    assert sys.path[-1] == str(tmp_path) and sys.path.count(str(tmp_path)) == 1


def test_constraints_pin_the_numpy_qgis_has(tmp_path):
    assert dm.constraints_text({"numpy": "1.24.2", "x": None}) == "numpy==1.24.2\n"
    path = dm.write_constraints(tmp_path / "deps")
    assert path == tmp_path / "deps" / "constraints.txt"
    assert path.read_text() == f"numpy=={np.__version__}\n"
    assert sorted(os.listdir(path.parent)) == ["constraints.txt"]


def _touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return str(path)


def test_finds_python_in_a_windows_osgeo4w_layout(tmp_path):
    qgis = _touch(tmp_path / "OSGeo4W" / "bin" / "qgis-bin.exe")
    prefix = tmp_path / "OSGeo4W" / "apps" / "Python39"
    python = _touch(prefix / "python.exe")
    assert dm.find_python(qgis, str(prefix), "win32", (3, 9)) == python


def test_finds_python_in_a_windows_standalone_layout_with_spaces(tmp_path):
    root = tmp_path / "Program Files" / "QGIS 3.22.16"
    qgis = _touch(root / "bin" / "qgis-ltr-bin.exe")
    python = _touch(root / "bin" / "python3.exe")  # exec_prefix lacks it: the exe's folder is next
    assert dm.find_python(qgis, str(root / "apps" / "Python39"), "win32", (3, 9)) == python


def test_finds_python_in_a_macos_bundle(tmp_path):
    macos = tmp_path / "QGIS-LTR.app" / "Contents" / "MacOS"
    qgis = _touch(macos / "QGIS")
    python = _touch(macos / "bin" / "python3.9")
    _touch(macos / "bin" / "python3")
    prefix = tmp_path / "QGIS-LTR.app" / "Contents" / "Frameworks" / "Python.framework" / "Versions" / "3.9"
    assert dm.find_python(qgis, str(prefix), "darwin", (3, 9)) == python


def test_finds_python_on_linux_and_accepts_python_itself(tmp_path):
    qgis = _touch(tmp_path / "usr" / "bin" / "qgis")
    python = _touch(tmp_path / "usr" / "bin" / "python3")
    assert dm.find_python(qgis, str(tmp_path / "usr"), "linux", (3, 11)) == python
    assert dm.find_python(python, "/nonexistent", "linux", (3, 11)) == python
    assert dm.find_python(sys.executable, sys.exec_prefix) == sys.executable


def test_no_python_found(tmp_path):
    qgis = _touch(tmp_path / "bin" / "qgis-bin.exe")
    assert dm.find_python(qgis, str(tmp_path / "apps"), "win32", (3, 9)) is None


def test_pip_command_and_the_text_shown_to_the_user(tmp_path):
    cmd = dm.pip_command(
        "/opt/py/python3", tmp_path / "deps dir", ["onnxruntime>=1.15.0"], tmp_path / "c.txt", "http://proxy:3128"
    )
    assert cmd[:4] == ["/opt/py/python3", "-m", "pip", "install"]
    assert cmd[cmd.index("--target") + 1] == str(tmp_path / "deps dir")
    assert cmd[cmd.index("--constraint") + 1] == str(tmp_path / "c.txt")
    assert cmd[cmd.index("--proxy") + 1] == "http://proxy:3128"
    assert "--only-binary=:all:" in cmd and cmd[-1] == "onnxruntime>=1.15.0"
    assert f"'{tmp_path / 'deps dir'}'" in dm.command_text(cmd, "linux")
    assert f'"{tmp_path / "deps dir"}"' in dm.command_text(cmd, "win32")
    plan = dm.install_plan(dm.REQUIREMENTS[:1], tmp_path, "/opt/py/python3")
    assert "onnxruntime>=1.15.0" in plan and str(tmp_path) in plan and "numpy stays" in plan


def test_run_streaming_passes_every_line():
    seen = []
    script = "print('a'); print(''); print('b'); raise SystemExit(3)"
    code, lines = dm.run_streaming([sys.executable, "-c", script], seen.append)
    assert (code, lines, seen) == (3, ["a", "", "b"], ["a", "", "b"])


def test_run_streaming_stops_a_silent_process_on_cancel():
    with pytest.raises(dm.ProcessCancelledError):
        dm.run_streaming([sys.executable, "-c", "import time; time.sleep(60)"], cancelled=lambda: True)


def test_probe_modules_of_another_python(tmp_path, monkeypatch):
    for name in ("torch", "samexporter"):
        _touch(tmp_path / name / "__init__.py")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert dm.probe_modules(sys.executable, ["torch", "samexporter", "no_such_module_xq"]) == {
        "torch": True, "samexporter": True, "no_such_module_xq": False}
    with pytest.raises(dm.SegmentationError, match="could not ask"):
        dm.probe_modules(str(tmp_path / "no-python"), ["torch"])


def test_real_pip_install_into_a_private_folder(tmp_path, clean_sys_path):
    """The plugin's own install path, from the package index, then imported via sys.path setup."""
    assert dm.detect([dm.Requirement("text-unidecode", "text_unidecode", None, "t")])[0].found is False
    target = dm.deps_dir(tmp_path / "profile")
    lines = []
    log = dm.install(["text-unidecode==1.3"], target, python=sys.executable, on_line=lines.append)
    assert log == lines and any("text_unidecode" in line or "text-unidecode" in line for line in lines)
    assert (target.parent / "constraints.txt").read_text() == f"numpy=={np.__version__}\n"
    assert sys.path[-1] == str(target)
    status = dm.detect([dm.Requirement("text-unidecode", "text_unidecode", None, "t")])[0]
    assert status.found and status.version == "1.3"
    import text_unidecode

    assert Path(text_unidecode.__file__).is_relative_to(target)
    assert text_unidecode.unidecode("Zürich") == "Zurich"


def test_failed_install_says_why_and_gives_the_command(tmp_path, clean_sys_path):
    target = tmp_path / "deps"
    with pytest.raises(dm.DependencyInstallError) as err:
        dm.install(["no-such-package-xq-31337==0.0.1"], target, python=sys.executable)
    msg = str(err.value)
    assert "no compatible wheel" in msg and "pip install --target" in msg and str(target) in msg
    assert os.listdir(target) == [] and str(target) not in sys.path


def test_cancelled_install_leaves_the_folder_empty(tmp_path, clean_sys_path):
    target = tmp_path / "deps"
    with pytest.raises(dm.DependencyInstallError, match="cancelled"):
        dm.install(["text-unidecode==1.3"], target, python=sys.executable, cancelled=lambda: True)
    assert os.listdir(target) == []


def test_missing_python_is_reported(tmp_path):
    with pytest.raises(dm.DependencyInstallError, match="could not start"):
        dm.install(["six"], tmp_path / "deps", python=str(tmp_path / "python3"))


def test_only_python_commands_are_started(tmp_path):
    """pip, samexporter and the probe run as argument lists of an absolute Python path; nothing else."""
    py = sys.executable
    assert dm.python_argv((py, "-m", "pip", "--version")) == [py, "-m", "pip", "--version"]
    assert dm.python_argv([py, "-m", "samexporter.export_encoder", "--help"])[2] == "samexporter.export_encoder"
    for bad in (f"{py} -m pip install x", [py, "-m", "http.server"], ["/bin/sh", "-c", "echo hi"], [py, "-c"],
                ["python", "-m", "pip"], [py, "pip", "install"], [py, "-m", "pipx"]):
        with pytest.raises(ValueError):
            dm.python_argv(bad)
    with pytest.raises(FileNotFoundError):
        dm.python_argv([str(tmp_path / "python3"), "-m", "pip"])
    with pytest.raises(ValueError, match="only runs pip"):
        dm.run_streaming([py, "-m", "http.server"])
