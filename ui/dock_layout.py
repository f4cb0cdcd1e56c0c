"""Widgets and layout of the AI Segmentation dock (built in code: no .ui compiler needed)."""

from __future__ import annotations

from typing import List

from qgis.gui import QgsCollapsibleGroupBox, QgsDoubleSpinBox, QgsMapLayerComboBox, QgsSpinBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.qgis_compat import LAYER_FILTER_POLYGON, LAYER_FILTER_RASTER
from ..gui.params import SCOPE_RASTER, SCOPE_VISIBLE

CANDIDATES = 3  # SAM's multimask output
OUTPUT_TIP = ("Polygon layer (GeoPackage) saved masks go to; empty: a new layer is created on first save, "
              "beside the project (or in the QGIS profile while the project is not saved)")


def _form(box: QWidget) -> QFormLayout:
    """A form whose labels go above their fields when the panel is narrow (rather than widening it)."""
    form = QFormLayout(box)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    return form


def _shrinkable(combo: QComboBox, chars: int = 12) -> None:
    """A combo box whose width does not follow its longest item (long layer names)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)


class DockLayout:
    """Builds the dock's widgets inside ``parent`` and keeps them as attributes."""

    def __init__(self, parent: QWidget) -> None:
        scroll = QScrollArea(parent)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.root = scroll
        body = QWidget()
        scroll.setWidget(body)
        col = QVBoxLayout(body)
        col.addWidget(self._source_box())
        col.addWidget(self._encode_box())
        col.addWidget(self._segment_box())
        col.addWidget(self._refine_box())
        col.addWidget(self._output_box())
        col.addStretch(1)
        # The panel is never narrower than its widest row (every optional row counted, as all are
        # shown now): a dock area squeezed by other panels grows instead of cutting buttons off.
        frame = 2 * scroll.frameWidth()
        scroll.setMinimumWidth(body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + frame)

    def _source_box(self) -> QWidget:
        box = QgsCollapsibleGroupBox("1. Raster and model")
        form = _form(box)
        self.layer_combo = QgsMapLayerComboBox()
        _shrinkable(self.layer_combo)
        self.layer_combo.setFilters(LAYER_FILTER_RASTER)
        self.layer_combo.setAllowEmptyLayer(True, "Choose a raster layer")
        self.layer_combo.setToolTip("Raster to segment")
        form.addRow("Raster", self.layer_combo)
        self.band_row = QWidget()
        bands = QFormLayout(self.band_row)
        bands.setContentsMargins(0, 0, 0, 0)
        self.band_combos: List[QComboBox] = []
        for name in ("R", "G", "B"):
            combo = QComboBox()
            _shrinkable(combo, 6)
            combo.setToolTip(f"Band shown to SAM as {name} (names and descriptions as stored in the file)")
            bands.addRow(name, combo)
            self.band_combos.append(combo)
        self.band_label = QLabel("Bands")
        form.addRow(self.band_label, self.band_row)
        self.setup_button = QPushButton("Set up models…")
        form.addRow("Model", self.setup_button)
        self.model_status = QLabel()
        self.model_status.setWordWrap(True)
        self.model_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.model_status)
        self.runtime_status = QLabel()  # where the models run (filled once they load)
        self.runtime_status.setWordWrap(True)
        self.runtime_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.runtime_status.setVisible(False)
        form.addRow(self.runtime_status)
        return box

    def _encode_box(self) -> QWidget:
        box = QgsCollapsibleGroupBox("2. Encode")
        grid = QGridLayout(box)
        self.scope_combo = QComboBox()
        self.scope_combo.addItem("Whole raster", SCOPE_RASTER)
        self.scope_combo.addItem("Visible extent", SCOPE_VISIBLE)
        self.encode_button = QPushButton("Encode Image")
        self.encode_button.setToolTip(
            "Run SAM's image encoder in the background on every crop of the chosen scope. "
            "Clicking without encoding first also works: the crop under the click is encoded then."
        )
        self.estimate_label = QLabel()
        self.estimate_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.progress_label = QLabel()
        self.progress_label.setWordWrap(True)
        grid.addWidget(self.scope_combo, 0, 0)
        grid.addWidget(self.encode_button, 0, 1)
        grid.addWidget(self.estimate_label, 1, 0, 1, 2)
        grid.addWidget(self.progress, 2, 0)
        grid.addWidget(self.cancel_button, 2, 1)
        grid.addWidget(self.progress_label, 3, 0, 1, 2)
        return box

    def _segment_box(self) -> QWidget:
        box = QgsCollapsibleGroupBox("3. Segment")
        col = QVBoxLayout(box)
        self.start_button = QPushButton("Start Segmentation")
        self.start_button.setCheckable(True)
        self.start_button.setToolTip("Left click: include · right click: exclude · left drag: box")
        col.addWidget(self.start_button)
        self.hint_label = QLabel(
            "Left click includes, right click excludes, a left drag draws a box. "
            "Keys, on the map or in this panel: S save, Ctrl+Z undo, Esc clear, Tab next mask; "
            "Enter in Label saves."
        )
        self.hint_label.setWordWrap(True)
        col.addWidget(self.hint_label)
        self.prompt_label = QLabel()
        col.addWidget(self.prompt_label)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet("color: #9a6700;")  # amber, as the preview while refining
        col.addWidget(self.status_label)
        self.candidate_row = QWidget()
        cands = QHBoxLayout(self.candidate_row)
        cands.setContentsMargins(0, 0, 0, 0)
        cands.addWidget(QLabel("Masks"))
        self.candidate_group = QButtonGroup(self.candidate_row)
        self.candidate_buttons: List[QToolButton] = []
        for i in range(CANDIDATES):
            button = QToolButton()
            button.setCheckable(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setText(f"{i + 1} · 0.00")  # the widest text it will show
            button.setToolTip("SAM's candidate masks for one click, with predicted IoU (Tab cycles)")
            self.candidate_group.addButton(button, i)
            cands.addWidget(button)
            self.candidate_buttons.append(button)
        cands.addStretch(1)
        col.addWidget(self.candidate_row)
        row = QHBoxLayout()
        self.save_button = QPushButton("Save Current Mask")
        self.save_button.setToolTip("Save the mask as a polygon in the output layer (S)")
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Remove the last prompt (Ctrl+Z)")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Remove every prompt and the preview (Esc)")
        for button in (self.save_button, self.undo_button, self.clear_button):
            row.addWidget(button)
        col.addLayout(row)
        return box

    def _refine_box(self) -> QWidget:
        box = QgsCollapsibleGroupBox("4. Refinement")
        form = _form(box)
        self.simplify_spin = QgsDoubleSpinBox()
        self.simplify_spin.setRange(0.0, 50.0)
        self.simplify_spin.setSingleStep(0.5)
        self.simplify_spin.setSuffix(" px")
        self.simplify_spin.setSpecialValueText("off (pixel outline)")
        self.simplify_spin.setToolTip("Simplification tolerance, in raster pixels (0: pixel outline)")
        self.min_area_spin = QgsSpinBox()
        self.min_area_spin.setRange(0, 1_000_000_000)
        self.min_area_spin.setSingleStep(10)
        self.min_area_spin.setSuffix(" px²")
        self.min_area_spin.setSpecialValueText("keep all parts")
        self.min_area_spin.setToolTip(
            "Parts smaller than this area, in raster pixels, are dropped (the largest part is always kept)"
        )
        self.fill_holes_spin = QgsSpinBox()
        self.fill_holes_spin.setRange(0, 1_000_000_000)
        self.fill_holes_spin.setSingleStep(10)
        self.fill_holes_spin.setSuffix(" px²")
        self.fill_holes_spin.setSpecialValueText("keep all holes")
        self.fill_holes_spin.setToolTip("Holes smaller than this area, in raster pixels, are filled")
        self.largest_only_check = QCheckBox("Keep the largest part only")
        form.addRow("Simplify", self.simplify_spin)
        form.addRow("Minimum area", self.min_area_spin)
        form.addRow("Fill holes under", self.fill_holes_spin)
        form.addRow("", self.largest_only_check)
        return box

    def _output_box(self) -> QWidget:
        box = QgsCollapsibleGroupBox("5. Output")
        form = _form(box)
        self.output_combo = QgsMapLayerComboBox()
        _shrinkable(self.output_combo)
        self.output_combo.setFilters(LAYER_FILTER_POLYGON)
        self.output_combo.setAllowEmptyLayer(True, "New layer (created on first save)")
        self.output_combo.setToolTip(OUTPUT_TIP)
        form.addRow("Save to", self.output_combo)
        self.label_edit = QLineEdit()
        self.label_edit.setPlaceholderText("e.g. building (optional)")
        self.label_edit.setToolTip("Stored in the 'label' field of each saved object")
        form.addRow("Label", self.label_edit)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip(
            "Write the output layer to a GeoPackage, GeoJSON or Shapefile, in its own CRS or the project's"
        )
        form.addRow("", self.export_button)
        return box
