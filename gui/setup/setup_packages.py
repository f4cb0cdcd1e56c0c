"""The setup dialog's Python packages: statuses, installing on consent, and the ONNX Runtime package to use."""

from __future__ import annotations

from typing import Any, List, Optional

from qgis.core import QgsNetworkAccessManager
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtNetwork import QNetworkProxy
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
)

from ...core import dependency_manager as deps
from ...core.deps import runtime_packages as rp
from ...core.deps import runtime_switch as rs
from .setup_consent import Consent

CUDA_OPTION = "Also download NVIDIA's CUDA 12 and cuDNN 9 libraries (several GB; not needed if they are installed)"


class PackageActions:
    """Mixed into :class:`~.setup_dialog.SetupDialog`, whose attributes and helpers it uses
    (``deps_target``, ``machine``, ``python``, ``_start``, ``_log``, ``_action``)."""

    def _build_packages(self: Any) -> QGroupBox:
        pkg = QGroupBox("Python packages")
        pcol = QVBoxLayout(pkg)
        self.deps_label = QLabel()
        self.runtime_label = QLabel()
        for label in (self.deps_label, self.runtime_label):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
        self.with_onnx = QCheckBox("Also install onnx (needed only to build the fast int8 encoder)")
        self.install_button = QPushButton("Install missing packages…")
        self.install_button.clicked.connect(self._action(self.install_dependencies))
        self.offer_button = QPushButton()
        self.offer_button.clicked.connect(self._action(lambda: self.switch_to(self._offers[0])))
        self.cpu_button = QPushButton(f"Back to the CPU package ({rp.CPU})…")
        self.cpu_button.clicked.connect(self._action(lambda: self.switch_to(rp.CPU)))
        self.other_button = QPushButton("Other ONNX Runtime package…")
        self.other_button.clicked.connect(self._action(self.choose_runtime))
        row = QHBoxLayout()
        for button in (self.offer_button, self.cpu_button, self.other_button):
            row.addWidget(button)
        row.addStretch(1)
        for widget in (self.deps_label, self.with_onnx, self.install_button, self.runtime_label):
            pcol.addWidget(widget)
        pcol.addLayout(row)
        self._offers: List[str] = []
        return pkg

    def _set_packages_busy(self: Any, busy: bool) -> None:
        for button in (self.install_button, self.offer_button, self.cpu_button, self.other_button):
            button.setEnabled(not busy)

    def refresh_dependencies(self: Any) -> None:
        statuses = deps.detect()
        self._missing = deps.missing(statuses)
        lines = [s.describe() for s in statuses] + [f"Private folder: {self.deps_target}"]
        self.deps_label.setText("\n".join(lines))
        onnx_missing = any(r.name == "onnx" for r in deps.missing(statuses, include_optional=True))
        self.with_onnx.setChecked(onnx_missing and not self._missing)
        self.with_onnx.setEnabled(onnx_missing)
        self.install_button.setText("Install…" if self._missing or onnx_missing else "All packages installed")
        self.refresh_runtime()

    def refresh_runtime(self: Any) -> None:
        """Show the accelerator found, the ONNX Runtime package(s) installed, and the switches that make sense."""
        offer = rp.fitting_package(self.machine)
        installed = rp.installed_runtimes(self.deps_target)
        backups = rs.backed_up(self.deps_target)
        lines = [f"Accelerator: {offer.reason}."]
        lines.append("ONNX Runtime: " + ("; ".join(r.describe() for r in installed) or "not installed"))
        if backups:
            where = rs.backup_dir(self.deps_target)
            lines.append(f"Backup (the way back, no download): {', '.join(backups)} in {where}")
        warning = rp.runtime_warning(installed)
        if warning:
            lines.append(f"Warning: {warning}")
        self.runtime_label.setText("\n".join(lines))
        self._offers = rp.switch_offers(offer, installed, backups)
        fitting = next((p for p in self._offers if p != rp.CPU), None)
        self.offer_button.setVisible(fitting is not None)
        if fitting is not None:
            self.offer_button.setText(f"Use the {rp.KINDS[fitting]} package ({fitting})…")
        self.cpu_button.setVisible(rp.CPU in self._offers)
        self.other_button.setVisible(len(rp.choices(self.machine.platform)) > 1)

    def _proxy(self: Any) -> Optional[str]:
        proxy = QgsNetworkAccessManager.instance().fallbackProxy()
        http = (QNetworkProxy.ProxyType.HttpProxy, QNetworkProxy.ProxyType.HttpCachingProxy)
        if proxy.type() in http and proxy.hostName():
            return f"http://{proxy.hostName()}:{proxy.port()}"
        return None

    def _installed(self: Any, message: str) -> None:
        self._log(message)
        self.refresh_dependencies()
        self.dependenciesInstalled.emit()

    def install_dependencies(self: Any) -> None:
        wanted = list(self._missing)
        if self.with_onnx.isChecked():
            wanted += [r for r in deps.REQUIREMENTS if r.name == "onnx"]
        if not wanted:
            return
        target = self.deps_target
        consent = Consent(self, "Install Python packages", lambda py, _: deps.install_plan(wanted, target, py),
                          self.python, "Install")
        if not consent.ask():
            return
        specs, python, proxy = [r.pip_spec for r in wanted], consent.python, self._proxy()
        self.python = python
        self._start("Installing packages",
                    lambda on_line, cancelled: deps.install(specs, target, python, on_line, cancelled, proxy),
                    lambda _: self._installed("Packages installed."))

    def choose_runtime(self: Any) -> None:
        """Switch to any ONNX Runtime package published for this platform (OpenVINO only this way)."""
        names = rp.choices(self.machine.platform)
        labels = [f"{name}: runs the models on {rp.DEVICES[name]}" for name in names]
        label, ok = QInputDialog.getItem(self, "ONNX Runtime package", "Package to use:", labels, 0, False)
        if ok:
            self.switch_to(names[labels.index(label)])

    def switch_to(self: Any, wanted: str) -> None:
        """Ask consent with the plan, then make ``wanted`` the ONNX Runtime package of the private folder."""
        target = self.deps_target
        rs.refuse_outside(wanted, target, self.python)  # a refusal comes before any question
        option = CUDA_OPTION if wanted == rp.GPU else None
        consent = Consent(self, f"Use {wanted}", lambda py, cuda: rs.switch_plan(wanted, target, py, cuda),
                          self.python, "Switch", option, option_checked=option is not None)
        if not consent.ask():
            return
        python, cuda, proxy = consent.python, consent.option_checked, self._proxy()
        self.python = python

        def job(on_line: Any, cancelled: Any) -> str:
            return rs.switch_runtime(wanted, target, python, on_line, cancelled, proxy, cuda_libs=cuda)

        def switched(message: str) -> None:
            self._installed(message)
            QMessageBox.information(self, f"Use {wanted}", message)

        self._start(f"Switching to {wanted}", job, switched)
