"""Asking consent for a pip job, with the Python that will run it and a way to choose another one."""

from __future__ import annotations

import os
from typing import Callable, Optional, Tuple

from qgis.PyQt.QtWidgets import QCheckBox, QFileDialog, QMessageBox, QPushButton, QWidget

from ...core import dependency_manager as deps
from ...core.deps.python_choice import check_python


class Consent:
    """A question box: the plan, then "Go ahead", "Choose Python…" or Cancel.

    Args:
        parent: the dialog asking.
        title: the box's title.
        plan: the plan text for a given interpreter (core's ``install_plan``, ``switch_plan``...).
        python: the interpreter found, or None when none was: then the box says so and only offers the choice.
        go: the text of the button that starts the job.
        option: the text of a checkbox under the plan (e.g. "Also download the CUDA libraries"), or None.
        option_checked: that checkbox's first state.

    After :meth:`ask`, ``python`` is the interpreter to use and ``option_checked`` the checkbox's state.
    """

    def __init__(self, parent: QWidget, title: str, plan: Callable[[str, bool], str], python: Optional[str],
                 go: str, option: Optional[str] = None, option_checked: bool = False) -> None:
        self.parent, self.title, self.plan, self.python, self.go = parent, title, plan, python, go
        self.option, self.option_checked = option, option_checked
        self.note = ""  # the check's warning about a chosen interpreter

    def text(self) -> str:
        """What the box says now."""
        if self.python is None:
            return f"{deps.no_python_text()}.\n\nChoose Python… to pick QGIS's Python interpreter."
        plan = self.plan(self.python, self.option_checked)
        return f"{self.note}\n\n{plan}" if self.note else plan

    def _box(self) -> Tuple[QMessageBox, QPushButton, QPushButton]:
        """The box as things stand, with its go and choose buttons."""
        box = QMessageBox(QMessageBox.Icon.Question, self.title, self.text(), parent=self.parent)
        go = box.addButton(self.go, QMessageBox.ButtonRole.AcceptRole)
        choose = box.addButton("Choose Python…", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        go.setEnabled(self.python is not None)
        if self.option:
            check = QCheckBox(self.option, box)  # owned by the box: a Python-owned one would be freed on return
            check.setChecked(self.option_checked)

            def toggled(on: bool) -> None:
                self.option_checked = on
                box.setText(self.text())  # the plan depends on the option (the CUDA libraries' size)

            check.toggled.connect(toggled)
            box.setCheckBox(check)
        return box, go, choose

    def ask(self) -> bool:
        """Show the box until the user goes ahead (True) or cancels (False)."""
        while True:
            box, go, choose = self._box()
            box.exec()
            clicked = box.clickedButton()
            box.deleteLater()  # one box per round: none piles up under the dialog
            if clicked is go:
                return True
            if clicked is not choose:
                return False
            self.choose_python()

    def choose_python(self) -> None:
        """Ask for an interpreter and check it (a refused one is explained, and the previous one stays)."""
        start = os.path.dirname(self.python) if self.python else ""
        path = QFileDialog.getOpenFileName(self.parent, "Python interpreter to install with", start)[0]
        if not path:
            return
        try:
            info = check_python(path)
        except deps.DependencyInstallError as exc:
            QMessageBox.warning(self.parent, self.title, str(exc))
            return
        self.python = info.path
        self.note = f"Chosen: {info.describe()}." + (f"\n{info.warning}" if info.warning else "")
