"""The Models part of the setup dialog: widgets only; what they show comes from core."""

from __future__ import annotations

import os
from typing import Callable, Dict, Optional, Sequence

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.models.catalogue import Checkpoint
from ...core.models.model_manager import ModelEntry, describe
from ...core.models.model_pairs import CatalogueRow, ModelPair

KEY = Qt.ItemDataRole.UserRole
CATALOGUE_COLUMNS = ("Model", "Speed on a CPU", "Download", "Licence", "Status")


def _label(text: str = "", bold: bool = False) -> QLabel:
    label = QLabel(f"<b>{text}</b>" if bold else text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ModelsPanel(QGroupBox):
    """Models folder, ready-made catalogue models, the user's own models, files found, and the advanced
    checkpoint path. ``buttons`` maps each button's text to the button; the dialog connects them."""

    def __init__(self, checkpoints: Sequence[Checkpoint], parent: Optional[QWidget] = None) -> None:
        super().__init__("Models", parent)
        col = QVBoxLayout(self)
        self.buttons: Dict[str, QPushButton] = {}
        folder_row = QHBoxLayout()
        self.folder_label = _label()
        folder_row.addWidget(QLabel("Models folder:"))
        folder_row.addWidget(self.folder_label, 1)
        folder_row.addWidget(self._button("Choose folder…"))
        col.addLayout(folder_row)

        self.recommend_label = _label()
        col.addWidget(_label("Ready-made models: one click, no PyTorch needed", bold=True))
        col.addWidget(self.recommend_label)
        self.catalogue = QTreeWidget()
        self.catalogue.setHeaderLabels(list(CATALOGUE_COLUMNS))
        self.catalogue.setRootIsDecorated(False)
        self.catalogue.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.catalogue.setMinimumHeight(6 * self.fontMetrics().height() + 24)  # header and four models
        self.catalogue.headerItem().setToolTip(1, "Encoder time per 1024 px crop on 2 CPU cores (fp32)")
        col.addWidget(self.catalogue)
        col.addLayout(self._row("Download"))

        col.addWidget(_label("Your own models (e.g. a fine-tuned SAM exported by samexporter)", bold=True))
        self.custom_list = QListWidget()
        self.custom_list.setMaximumHeight(4 * self.fontMetrics().height())
        col.addWidget(self.custom_list)
        col.addLayout(self._row("Add model…", "Remove model"))

        col.addWidget(_label("Model files found", bold=True))
        self.model_list = QListWidget()
        self.model_list.setMaximumHeight(6 * self.fontMetrics().height())
        col.addWidget(self.model_list)

        col.addWidget(_label("Advanced: export from an official PyTorch checkpoint (needs a Python with "
                             "PyTorch)", bold=True))
        adv = QHBoxLayout()
        self.spec_combo = QComboBox()
        for ckpt in checkpoints:
            self.spec_combo.addItem(ckpt.title, ckpt.key)
        adv.addWidget(self.spec_combo)
        for text in ("Download checkpoint", "Export from checkpoint…", "Build fast int8 encoder", "Refresh"):
            adv.addWidget(self._button(text))
        col.addLayout(adv)

        use = QHBoxLayout()
        self.pair_label = _label()
        use.addWidget(self.pair_label, 1)
        use.addWidget(self._button("Use these models"))
        col.addLayout(use)

    def _button(self, text: str) -> QPushButton:
        self.buttons[text] = QPushButton(text)
        return self.buttons[text]

    def _row(self, *texts: str) -> QHBoxLayout:
        row = QHBoxLayout()
        for text in texts:
            row.addWidget(self._button(text))
        row.addStretch(1)
        return row

    def connect_buttons(self, slots: Dict[str, Callable[..., None]]) -> None:
        for text, slot in slots.items():
            self.buttons[text].clicked.connect(slot)

    def show_folder(self, path: str) -> None:
        self.folder_label.setText(path)

    def show_catalogue(self, rows: Sequence[CatalogueRow], selected: Optional[str]) -> None:
        """One line per catalogue model, recommended first; ``selected`` is a model id."""
        self.catalogue.clear()
        recommended = next((r for r in rows if r.recommended), None)
        self.recommend_label.setText(
            f"Recommended for CPUs: {recommended.model.title} (fastest encoder). Models are checked by SHA256 "
            "and by the engine before they are offered." if recommended else
            "This version of the plugin cannot run the catalogue's model families yet.")
        for row in rows:
            m = row.model
            title = f"★ {m.title}" if row.recommended else m.title
            item = QTreeWidgetItem([title, m.speed_text, f"{m.size_mb:.0f} MB", m.licence, row.status])
            item.setData(0, KEY, m.id)
            for column in range(len(CATALOGUE_COLUMNS)):
                item.setToolTip(column, row.details)
            self.catalogue.addTopLevelItem(item)
            if m.id == selected:
                item.setSelected(True)
        for column in range(len(CATALOGUE_COLUMNS) - 1):
            self.catalogue.resizeColumnToContents(column)

    def show_custom(self, pairs: Sequence[ModelPair], selected: Optional[str]) -> None:
        self.custom_list.clear()
        for pair in pairs:
            state = "ready" if pair.ok else pair.problem
            item = QListWidgetItem(f"{pair.title} ({pair.family}): {state}")
            item.setToolTip(f"{pair.encoder}\n{pair.decoder}")
            item.setData(KEY, pair.title)
            self.custom_list.addItem(item)
            if pair.title == selected:
                item.setSelected(True)
        if not pairs:
            self.custom_list.addItem("None yet: 'Add model…' checks an encoder + decoder pair and lists it here.")

    def show_files(self, entries: Sequence[ModelEntry], folders: Sequence[str]) -> None:
        self.model_list.clear()
        for e in entries:
            item = QListWidgetItem(describe(e))
            item.setToolTip(e.path)
            item.setData(KEY, e.path)
            self.model_list.addItem(item)
        if not entries:
            self.model_list.addItem(f"No model files in {' or '.join(folders)}.")

    def show_pair(self, pair: Optional[ModelPair]) -> None:
        self.pair_label.setText(
            f"Will use: {os.path.basename(pair.encoder)} + {os.path.basename(pair.decoder)}" if pair
            else "No usable encoder + decoder pair yet: download a ready-made model above.")

    def selected_catalogue(self) -> Optional[str]:
        items = self.catalogue.selectedItems()
        return items[0].data(0, KEY) if items else None

    def selected_custom(self) -> Optional[str]:
        items = [i for i in self.custom_list.selectedItems() if i.data(KEY)]
        return items[0].data(KEY) if items else None

    def selected_file(self) -> Optional[str]:
        item = self.model_list.currentItem()
        return item.data(KEY) if item else None

    def set_busy(self, busy: bool) -> None:
        for button in self.buttons.values():
            button.setEnabled(not busy)
