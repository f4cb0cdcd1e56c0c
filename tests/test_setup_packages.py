"""The setup dialog's packages part: the ONNX Runtime package that fits, the way back, choosing the Python."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QMessageBox
from wheel_cases import fake_dist

from tools.plugin_package import plugin_module

setup = plugin_module("gui.setup.setup_dialog")
consent_mod = plugin_module("gui.setup.setup_consent")
rp = plugin_module("core.deps.runtime_packages")
deps = plugin_module("core.dependency_manager")

NVIDIA_PROC = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"


@pytest.fixture
def warnings(monkeypatch):
    """Warnings are modal: collect what they would say instead."""
    said = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, title, text: said.append((title, text)))
    return said


def dialog(qtbot, tmp_path, machine):
    dlg = setup.SetupDialog(None, models_dir=str(tmp_path / "models"), profile_dir=str(tmp_path / "profile"),
                            machine=machine)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=60000)
    return dlg


def nvidia_root(tmp_path: Path) -> Path:
    version = tmp_path / "root" / "proc" / "driver" / "nvidia" / "version"
    version.parent.mkdir(parents=True)
    version.write_text(NVIDIA_PROC)
    return tmp_path / "root"


def ort_site() -> Path:
    """Where this test Python's own onnxruntime is (it plays QGIS's own here)."""
    return next(r.folder for r in rp.installed_runtimes(Path("/nonexistent"), sys.path) if not r.private)


def test_a_machine_with_an_nvidia_driver_is_offered_the_gpu_package(qgis_app, qtbot, tmp_path, warnings):
    dlg = dialog(qtbot, tmp_path, rp.Machine("linux", nvidia_root(tmp_path)))
    assert not dlg.offer_button.isHidden() and dlg.offer_button.text() == "Use the GPU package (onnxruntime-gpu)…"
    assert dlg.cpu_button.isHidden() and not dlg.other_button.isHidden()
    lines = dlg.runtime_label.text().splitlines()
    assert lines[0] == "Accelerator: NVIDIA driver 550.54.14 found: onnxruntime-gpu runs the models on the GPU (CUDA)."
    ours = rp.installed_runtimes(dlg.deps_target, sys.path)
    assert lines[1] == f"ONNX Runtime: {ours[0].describe()}" and "QGIS's Python" in lines[1]
    dlg.offer_button.click()  # this Python's onnxruntime is not the plugin's to replace: refused, no question
    assert len(warnings) == 1 and warnings[0][1].startswith(f"onnxruntime {ours[0].version} is installed in "
                                                            f"QGIS's own Python ({ort_site()})")
    assert not dlg.busy() and not dlg.deps_target.exists()


def test_no_gpu_no_offer_and_the_way_back_to_the_cpu_package(qgis_app, qtbot, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    dlg = dialog(qtbot, tmp_path, rp.Machine("linux", root))
    assert dlg.offer_button.isHidden() and dlg.cpu_button.isHidden()
    assert dlg.runtime_label.text().startswith("Accelerator: no NVIDIA driver found: the standard onnxruntime ")
    fake_dist(dlg.deps_target, "onnxruntime-gpu", "1.20.1")
    dlg.refresh_dependencies()
    assert dlg.offer_button.isHidden()
    assert not dlg.cpu_button.isHidden() and dlg.cpu_button.text() == "Back to the CPU package (onnxruntime)…"
    text = dlg.runtime_label.text()
    assert "onnxruntime-gpu 1.20.1 (the plugin's folder)" in text
    assert "Warning: Several ONNX Runtime packages are installed" in text


def test_macos_offers_no_switch(qgis_app, qtbot, tmp_path):
    dlg = dialog(qtbot, tmp_path, rp.Machine("darwin", tmp_path))
    assert dlg.offer_button.isHidden() and dlg.cpu_button.isHidden() and dlg.other_button.isHidden()
    assert "CoreML" in dlg.runtime_label.text()


def click_through(qtbot, steps):
    """Answer the message boxes as they open: ``steps[i](box)`` handles the i-th one (and clicks)."""
    seen = []

    def poll():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box not in seen and len(seen) < len(steps):
            seen.append(box)
            steps[len(seen) - 1](box)

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(20)
    return timer, seen


def button(box, text):
    return next(b for b in box.buttons() if b.text() == text)


def test_consent_without_a_python_offers_the_choice_and_checks_it(qgis_app, qtbot, tmp_path, monkeypatch,
                                                                 warnings):
    shim = tmp_path / "shims" / "python3"
    shim.parent.mkdir()
    shim.write_text("#!/usr/bin/env bash\nexec pyenv exec python3 \"$@\"\n")
    shim.chmod(0o755)
    picks = iter([str(shim), sys.executable])
    monkeypatch.setattr(consent_mod.QFileDialog, "getOpenFileName", lambda *_: (next(picks), ""))
    texts, enabled = [], []

    def look_then(name):
        def step(box):
            texts.append(box.text())
            enabled.append(button(box, "Install").isEnabled())
            button(box, name).click()
        return step

    consent = consent_mod.Consent(None, "Install Python packages", lambda py, _: f"plan with {py}", None, "Install")
    timer, seen = click_through(qtbot, [look_then("Choose Python…"), look_then("Choose Python…"),
                                        look_then("Install")])
    assert consent.ask() is True
    timer.stop()
    assert len(seen) == 3 and enabled == [False, False, True]
    assert texts[0].startswith("cannot find the Python interpreter of this QGIS") and "Choose Python…" in texts[0]
    assert texts[1] == texts[0]  # the shim was refused: still no interpreter
    assert len(warnings) == 1 and "is a launcher script" in warnings[0][1]
    version = ".".join(map(str, sys.version_info[:3]))
    assert texts[2] == f"Chosen: {sys.executable}: Python {version} in {sys.prefix}.\n\nplan with {sys.executable}"
    assert consent.python == sys.executable


def test_consent_option_changes_the_plan_and_cancel_declines(qgis_app, qtbot):
    consent = consent_mod.Consent(None, "Use onnxruntime-gpu", lambda py, cuda: f"{py} cuda={cuda}",
                                  sys.executable, "Switch", "Also the CUDA libraries", option_checked=True)
    texts = []

    def untick_then_cancel(box):
        texts.append(box.text())
        box.checkBox().setChecked(False)
        texts.append(box.text())
        box.button(QMessageBox.StandardButton.Cancel).click()

    timer, _ = click_through(qtbot, [untick_then_cancel])
    assert consent.ask() is False
    timer.stop()
    assert texts == [f"{sys.executable} cuda=True", f"{sys.executable} cuda=False"]
    assert consent.option_checked is False
