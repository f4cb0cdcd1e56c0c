"""The ONNX Runtime package that fits the machine, the installed ones, and switching with a backup."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from wheel_cases import fake_dist, ort_wheel

from core import dependency_manager as dm
from core.deps import runtime_packages as rp
from core.deps import runtime_switch as rs

NVIDIA_PROC = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
NVIDIA_OPEN = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  Release Build  (dvs-builder)\n"


def _file(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def clean_sys_path(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))


def tree(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("content, version", [(NVIDIA_PROC, "550.54.14"), (NVIDIA_OPEN, "560.35.03")])
def test_linux_nvidia_driver_from_proc(tmp_path, content, version):
    _file(tmp_path / "proc" / "driver" / "nvidia" / "version", content)
    offer = rp.fitting_package(rp.Machine("linux", tmp_path))
    assert offer == rp.Offer("onnxruntime-gpu", f"NVIDIA driver {version} found: onnxruntime-gpu runs the models "
                                                "on the GPU (CUDA)")


def test_linux_nvidia_device_node_and_no_driver(tmp_path):
    assert rp.fitting_package(rp.Machine("linux", tmp_path)) == rp.Offer(
        "onnxruntime", "no NVIDIA driver found: the standard onnxruntime package runs the models on the CPU")
    _file(tmp_path / "dev" / "nvidiactl")
    offer = rp.fitting_package(rp.Machine("linux", tmp_path))
    assert offer.package == "onnxruntime-gpu" and str(tmp_path / "dev" / "nvidiactl") in offer.reason


def test_windows_nvidia_directml_and_neither(tmp_path):
    windows = tmp_path / "Windows"
    assert rp.fitting_package(rp.Machine("win32", windows, 10)).package == "onnxruntime"
    _file(windows / "System32" / "d3d12.dll")
    assert rp.fitting_package(rp.Machine("win32", windows, 6)).package == "onnxruntime"  # Windows 8.1: no DirectML
    offer = rp.fitting_package(rp.Machine("win32", windows, 10))
    assert offer.package == "onnxruntime-directml" and "DirectX 12 found" in offer.reason
    _file(windows / "System32" / "nvcuda.dll")
    offer = rp.fitting_package(rp.Machine("win32", windows, 10))
    assert offer == rp.Offer("onnxruntime-gpu", f"NVIDIA driver found ({windows / 'System32' / 'nvcuda.dll'}): "
                                                "onnxruntime-gpu runs the models on the GPU (CUDA)")


def test_macos_keeps_the_standard_package(tmp_path):
    _file(tmp_path / "dev" / "nvidiactl")  # not looked at on macOS
    offer = rp.fitting_package(rp.Machine("darwin", tmp_path))
    assert offer.package == "onnxruntime" and "CoreML" in offer.reason and "nothing to switch" in offer.reason
    assert rp.choices("darwin") == ["onnxruntime"]
    assert rp.choices("linux") == ["onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"]
    assert rp.choices("win32") == list(dm.ORT_PACKAGES)


def test_this_machine_is_detected_without_importing_anything():
    machine = rp.Machine.this()
    assert machine.platform == sys.platform and machine.root == Path("/")
    assert rp.fitting_package(machine).package in rp.choices(sys.platform)


def test_pip_specs():
    assert rp.pip_spec("onnxruntime-gpu", cuda_libs=True) == "onnxruntime-gpu[cuda,cudnn]>=1.15.0"
    assert rp.pip_spec("onnxruntime-gpu") == "onnxruntime-gpu>=1.15.0"
    assert rp.pip_spec("onnxruntime-directml", cuda_libs=True) == "onnxruntime-directml>=1.15.0"


def test_installed_runtimes_with_their_folders_and_the_warning(tmp_path):
    qgis_site, private = tmp_path / "qgis" / "site-packages", dm.deps_dir(tmp_path / "profile")
    fake_dist(qgis_site, "onnxruntime", "1.19.2")
    fake_dist(private, "onnxruntime-gpu", "1.20.1")
    fake_dist(private, "numpy", "1.26.4", module=False)  # not an ONNX Runtime package
    found = rp.installed_runtimes(private, [str(qgis_site), str(qgis_site)])
    assert found == [rp.InstalledRuntime("onnxruntime", "1.19.2", qgis_site.resolve(), False),
                     rp.InstalledRuntime("onnxruntime-gpu", "1.20.1", private.resolve(), True)]
    assert found[1].describe() == "onnxruntime-gpu 1.20.1 (the plugin's folder)"
    assert found[0].describe() == f"onnxruntime 1.19.2 (QGIS's Python: {qgis_site.resolve()})"
    warning = rp.runtime_warning(found)
    assert warning.startswith("Several ONNX Runtime packages are installed: onnxruntime 1.19.2")
    assert "overwrite each other's files" in warning
    assert rp.runtime_warning(found[1:]) is None
    assert rp.installed_runtimes(tmp_path / "absent", []) == []


def test_detect_takes_any_onnx_runtime_package_with_its_version(tmp_path, monkeypatch):
    site, other = tmp_path / "site", tmp_path / "other"
    fake_dist(site, "onnxruntime-gpu", "1.20.1")
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)  # find_spec would answer from there
    monkeypatch.setattr(sys, "path", [str(site)])
    req = next(r for r in dm.REQUIREMENTS if r.name == "onnxruntime")
    status = dm.detect([req])[0]
    assert (status.found, status.version, status.dist, status.ok) == (True, "1.20.1", "onnxruntime-gpu", True)
    assert status.describe() == "onnxruntime: 1.20.1 from onnxruntime-gpu (runs the SAM models)"
    fake_dist(other, "onnxruntime", "1.14.1")
    monkeypatch.setattr(sys, "path", [str(other), str(site)])  # the first one on the path is imported
    status = dm.detect([req])[0]
    assert (status.version, status.dist, status.too_old) == ("1.14.1", None, True)


@pytest.fixture
def wheels(tmp_path):
    folder = tmp_path / "wheels"
    ort_wheel(folder, "onnxruntime", "1.19.0")
    ort_wheel(folder, "onnxruntime-gpu", "1.20.1")
    return folder


def _switch(wanted, target, wheels, **kw):
    return rs.switch_runtime(wanted, target, sys.executable, paths=[], find_links=wheels, **kw)


def test_switch_keeps_a_backup_and_switching_back_restores_it(tmp_path, wheels, clean_sys_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    target = dm.deps_dir(tmp_path / "profile")
    first = _switch("onnxruntime", target, wheels)  # from nothing: a plain install
    assert first == f"onnxruntime 1.19.0 is now the ONNX Runtime package in {target}."
    cpu = tree(target)
    assert "onnxruntime/__init__.py" in cpu and "onnxruntime-1.19.0.dist-info/RECORD" in cpu

    lines = []
    said = _switch("onnxruntime-gpu", target, wheels, on_line=lines.append)
    backup = rs.backup_dir(target)
    assert backup == tmp_path / "profile" / "python" / "ai_segmentation_deps_backup" / target.name
    assert said == (f"onnxruntime-gpu 1.20.1 is now the ONNX Runtime package in {target}. onnxruntime 1.19.0 is "
                    f"kept in {backup}: switching back to it needs no download.")
    assert any("onnxruntime-gpu" in line or "onnxruntime_gpu" in line for line in lines)  # pip's log
    assert [r.name for r in rp.installed_runtimes(target, [])] == ["onnxruntime-gpu"]
    assert (target / "onnxruntime" / "__init__.py").read_text().endswith("BUILD = 'onnxruntime-gpu'\n")
    assert not list(target.glob("onnxruntime-*.dist-info"))
    assert rs.backed_up(target) == ["onnxruntime-1.19.0"]
    assert tree(backup / "onnxruntime-1.19.0") == cpu
    assert sys.path[-1] == str(target)

    empty = tmp_path / "no-wheels"
    empty.mkdir()  # the way back needs no download: nothing could be downloaded from here
    back = _switch("onnxruntime", target, empty)
    assert back.startswith(f"onnxruntime 1.19.0 is now the ONNX Runtime package in {target}. onnxruntime-gpu")
    assert tree(target) == cpu
    assert rs.backed_up(target) == ["onnxruntime-gpu-1.20.1"]
    assert not rs._staging(target).exists()
    assert _switch("onnxruntime", target, empty).endswith("nothing to do.")


@pytest.mark.parametrize("how", ["no such wheel", "cancelled"])
def test_a_failed_switch_puts_the_old_package_back(tmp_path, wheels, clean_sys_path, how):
    target = dm.deps_dir(tmp_path / "profile")
    _switch("onnxruntime", target, wheels)
    before = tree(target)
    wanted, cancelled = ("onnxruntime-directml", None) if how == "no such wheel" else ("onnxruntime-gpu", True)
    with pytest.raises(dm.DependencyInstallError) as err:
        _switch(wanted, target, wheels, cancelled=(lambda: True) if cancelled else None)
    msg = str(err.value)
    assert msg.startswith(f"switching to {wanted} failed; onnxruntime 1.19.0 was put back as it was. ")
    assert ("no compatible wheel" in msg) if how == "no such wheel" else ("cancelled" in msg)
    assert tree(target) == before
    assert not rs._staging(target).exists() and rs.backed_up(target) == []  # no backup made of a failure


def test_a_failed_switch_keeps_the_older_backup(tmp_path, wheels, clean_sys_path):
    target = dm.deps_dir(tmp_path / "profile")
    _switch("onnxruntime", target, wheels)
    _switch("onnxruntime-gpu", target, wheels)
    backup = tree(rs.backup_dir(target))
    with pytest.raises(dm.DependencyInstallError, match=r"onnxruntime-gpu 1\.20\.1 was put back"):
        _switch("onnxruntime-openvino", target, wheels)
    assert tree(rs.backup_dir(target)) == backup and rs.backed_up(target) == ["onnxruntime-1.19.0"]
    assert [r.name for r in rp.installed_runtimes(target, [])] == ["onnxruntime-gpu"]


def test_a_package_in_qgis_s_own_python_is_not_touched(tmp_path):
    qgis_site, target = tmp_path / "qgis" / "site-packages", dm.deps_dir(tmp_path / "profile")
    fake_dist(qgis_site, "onnxruntime", "1.19.2")
    before = tree(qgis_site)
    with pytest.raises(dm.DependencyInstallError) as err:
        rs.switch_runtime("onnxruntime-gpu", target, sys.executable, paths=[str(qgis_site)])
    msg = str(err.value)
    assert msg.startswith(f"onnxruntime 1.19.2 is installed in QGIS's own Python ({qgis_site.resolve()})")
    assert f"{sys.executable} -m pip uninstall onnxruntime" in msg and "switch again" in msg
    assert tree(qgis_site) == before and list(target.iterdir()) == []


def test_recover_finishes_an_interrupted_switch(tmp_path):
    target = dm.deps_dir(tmp_path / "profile")
    fake_dist(target, "onnxruntime", "1.19.0")
    before = tree(target)
    rs._move_out(target, rs._staging(target))  # QGIS stopped here, before pip ran
    assert list(target.iterdir()) == []
    rs.recover(target)
    assert tree(target) == before and not rs._staging(target).exists()
    _file(rs._staging(target) / "onnxruntime-1.18.0" / "onnxruntime" / "__init__.py")
    rs.recover(target)  # the switch had finished: the leftover goes
    assert tree(target) == before and not rs._staging(target).exists()


def test_restart_note_when_onnxruntime_is_loaded(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", types.ModuleType("onnxruntime"))
    assert rp.restart_note("onnxruntime-gpu") == ("onnxruntime is already loaded in this QGIS session: restart QGIS "
                                                  "to use onnxruntime-gpu.")
    monkeypatch.delitem(sys.modules, "onnxruntime")
    assert rp.restart_note("onnxruntime-gpu") == ""


def test_switch_plan_says_what_downloads_and_where_the_backup_goes(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    target = dm.deps_dir(tmp_path / "profile")
    fake_dist(target, "onnxruntime", "1.19.0")
    plan = rs.switch_plan("onnxruntime-gpu", target, "/opt/qgis/bin/python3", cuda_libs=True, paths=[])
    assert "onnxruntime-gpu[cuda,cudnn]>=1.15.0 (a few hundred MB) will be downloaded" in plan
    assert "several GB" in plan and str(target) in plan and "/opt/qgis/bin/python3" in plan
    assert f"onnxruntime 1.19.0 will be moved to the backup folder\n  {rs.backup_dir(target)}" in plan
    assert "restart QGIS" not in plan
    plan = rs.switch_plan("onnxruntime-gpu", target, "/opt/qgis/bin/python3", cuda_libs=False, paths=[])
    assert "several GB" not in plan and "onnxruntime-gpu>=1.15.0" in plan
    _file(rs.backup_dir(target) / "onnxruntime-gpu-1.20.1" / "onnxruntime" / "__init__.py")
    plan = rs.switch_plan("onnxruntime-gpu", target, "/opt/qgis/bin/python3", cuda_libs=True, paths=[])
    assert plan.startswith("onnxruntime-gpu-1.20.1 will be restored from the backup") and "(no download)" in plan


def test_detection_imports_no_onnx_runtime(tmp_path):
    code = (
        "import sys; from core.deps import runtime_packages as rp; "
        "rp.fitting_package(rp.Machine.this()); rp.installed_runtimes(sys.argv[1]); "
        "print('onnxruntime' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=root, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False"]
