"""The AI Segmentation dock: shows state and emits typed requests. No segmentation logic here."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from qgis.core import QgsMapLayer, QgsRasterLayer
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QSignalBlocker, pyqtSignal
from qgis.PyQt.QtWidgets import QWidget

from .core.segment.mask_ops import RefineParams
from .gui.params import EncodeRequest, OutputChoice, SourceChoice
from .toolbelt.log import guarded
from .toolbelt.metadata import plugin_name
from .ui.dock_layout import CANDIDATES, OUTPUT_TIP, DockLayout

OK_STYLE = "color: #1a7f37;"
CANCELLING = "Cancelling… (the crop being encoded is stopped first)"
MISSING_STYLE = "color: #b42318;"
WARNING_STYLE = "color: #9a6700;"


class AISegmentationDock(QgsDockWidget):
    """Dock of the plugin.

    Signals:
        source_changed(SourceChoice), encode_requested(EncodeRequest), scope_changed(EncodeRequest),
        cancel_requested(), segment_toggled(bool), save_requested(), undo_requested(), clear_requested(),
        mask_chosen(int), refine_changed(RefineParams), output_changed(OutputChoice),
        export_requested(), setup_requested(), label_entered() (Enter in the Label field).
    """

    source_changed = pyqtSignal(object)
    encode_requested = pyqtSignal(object)
    scope_changed = pyqtSignal(object)
    cancel_requested = pyqtSignal()
    segment_toggled = pyqtSignal(bool)
    save_requested = pyqtSignal()
    undo_requested = pyqtSignal()
    clear_requested = pyqtSignal()
    mask_chosen = pyqtSignal(int)
    refine_changed = pyqtSignal(object)
    output_changed = pyqtSignal(object)
    export_requested = pyqtSignal()
    setup_requested = pyqtSignal()
    label_entered = pyqtSignal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(plugin_name(), parent)
        self.setObjectName("AISegmentationDock")
        self.ui = DockLayout(self)
        self.setWidget(self.ui.root)
        u = self.ui
        u.layer_combo.layerChanged.connect(self._on_layer_changed)
        for combo in u.band_combos:
            combo.currentIndexChanged.connect(self._emit_source)
        u.setup_button.clicked.connect(self.setup_requested)
        u.scope_combo.currentIndexChanged.connect(lambda _i: self.scope_changed.emit(self.encode_request()))
        u.encode_button.clicked.connect(lambda: self.encode_requested.emit(self.encode_request()))
        u.cancel_button.clicked.connect(self.cancel_requested)
        u.start_button.toggled.connect(self.segment_toggled)
        u.save_button.clicked.connect(self.save_requested)
        u.undo_button.clicked.connect(self.undo_requested)
        u.clear_button.clicked.connect(self.clear_requested)
        u.candidate_group.buttonClicked[int].connect(self.mask_chosen)
        for spin in (u.simplify_spin, u.min_area_spin, u.fill_holes_spin):
            spin.valueChanged.connect(self._emit_refine)
        u.largest_only_check.toggled.connect(self._emit_refine)
        u.output_combo.layerChanged.connect(lambda _l: self.output_changed.emit(self.output_choice()))
        u.export_button.clicked.connect(self.export_requested)
        u.label_edit.returnPressed.connect(self.label_entered)
        self._show_bands(None)
        self.set_encoding(False)
        self.set_candidates(())
        self.set_prompt_summary(0, 0, False)
        self.set_can_save(False)
        self.set_can_clear(False)
        self.set_segment_status("")

    # --- what the user chose ---

    def raster_layer(self) -> Optional[QgsRasterLayer]:
        layer = self.ui.layer_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def source_choice(self) -> SourceChoice:
        layer = self.raster_layer()
        bands: Optional[Tuple[int, int, int]] = None
        if layer is not None and not self.ui.band_row.isHidden():
            b = tuple(c.currentData() for c in self.ui.band_combos)
            bands = (b[0], b[1], b[2])
        return SourceChoice(layer.id() if layer else None, bands)

    def encode_request(self) -> EncodeRequest:
        return EncodeRequest(scope=self.ui.scope_combo.currentData())

    def refine_params(self) -> RefineParams:
        u = self.ui
        return RefineParams(
            simplify_px=u.simplify_spin.value(),
            fill_holes_px=u.fill_holes_spin.value(),
            min_area_px=u.min_area_spin.value(),
            largest_only=u.largest_only_check.isChecked(),
        )

    def output_choice(self) -> OutputChoice:
        layer = self.ui.output_combo.currentLayer()
        return OutputChoice(layer.id() if layer else None)

    def object_label(self) -> str:
        return self.ui.label_edit.text().strip()

    def set_layer(self, layer: Optional[QgsMapLayer]) -> None:
        self.ui.layer_combo.setLayer(layer)

    def set_output_layer(self, layer: Optional[QgsMapLayer], path: Optional[str] = None) -> None:
        """Show the output layer (``path``: its GeoPackage, named in the tooltip)."""
        with QSignalBlocker(self.ui.output_combo):
            self.ui.output_combo.setLayer(layer)
        where = f"\nSaved objects go to {path}" if layer is not None and path else ""
        self.ui.output_combo.setToolTip(OUTPUT_TIP + where)

    def set_refine(self, refine: RefineParams) -> None:
        """Show ``refine`` (the settings' defaults) without emitting refine_changed."""
        u = self.ui
        widgets = (u.simplify_spin, u.min_area_spin, u.fill_holes_spin, u.largest_only_check)
        blockers = [QSignalBlocker(w) for w in widgets]
        u.simplify_spin.setValue(refine.simplify_px)
        u.min_area_spin.setValue(int(refine.min_area_px))
        u.fill_holes_spin.setValue(int(refine.fill_holes_px))
        u.largest_only_check.setChecked(refine.largest_only)
        for spin, value in ((u.simplify_spin, refine.simplify_px), (u.min_area_spin, refine.min_area_px),
                            (u.fill_holes_spin, refine.fill_holes_px)):
            spin.setClearValue(value)  # the spin box's reset button returns to the settings' default
        for blocker in blockers:
            blocker.unblock()

    @guarded
    def _on_layer_changed(self, _layer: object) -> None:
        self._show_bands(self.raster_layer())
        self._emit_source()

    def _show_bands(self, layer: Optional[QgsRasterLayer]) -> None:
        """Band choice only matters with more than three bands (fewer are used as they are); each
        band is listed as QGIS names it, with the description stored in the file."""
        count = layer.bandCount() if layer is not None else 0
        visible = count > 3
        self.ui.band_row.setVisible(visible)
        self.ui.band_label.setVisible(visible)
        if visible:
            for i, combo in enumerate(self.ui.band_combos):
                with QSignalBlocker(combo):
                    combo.clear()
                    for band in range(1, count + 1):
                        combo.addItem(layer.bandName(band), band)
                    combo.setCurrentIndex(i)

    def _emit_source(self, *_args: object) -> None:
        self.source_changed.emit(self.source_choice())

    def _emit_refine(self, *_args: object) -> None:
        self.refine_changed.emit(self.refine_params())

    # --- state shown to the user ---

    def set_model_status(self, found: bool, text: str) -> None:
        self.ui.model_status.setText(text)
        self.ui.model_status.setStyleSheet(OK_STYLE if found else MISSING_STYLE)
        self.ui.setup_button.setText("Models…" if found else "Set up models…")

    def set_runtime(self, text: str, warning: bool = False) -> None:
        """Where the models run ("Runs on CPU: encoder and decoder"); a fallback shows as a warning."""
        self.ui.runtime_status.setText(text)
        self.ui.runtime_status.setStyleSheet(WARNING_STYLE if warning else "")
        self.ui.runtime_status.setVisible(bool(text))

    def set_estimate(self, text: str) -> None:
        self.ui.estimate_label.setText(text)

    def set_encoding(self, active: bool, fraction: float = 0.0, text: str = "") -> None:
        """Progress of the encoder tasks; ``fraction`` in [0, 1], negative when unknown (busy bar)."""
        u = self.ui
        u.progress.setVisible(active)
        u.cancel_button.setVisible(active)
        u.cancel_button.setEnabled(True)
        u.encode_button.setEnabled(not active)
        if fraction < 0:
            u.progress.setRange(0, 0)
        else:
            u.progress.setRange(0, 1000)
            u.progress.setValue(round(min(1.0, fraction) * 1000))
            u.progress.setFormat(f"{fraction * 100:.0f} %")
        u.progress_label.setText(text)
        u.progress_label.setVisible(bool(text))

    def set_cancelling(self) -> None:
        """A cancel was asked: say so at once (the crop being encoded stops first)."""
        self.ui.cancel_button.setEnabled(False)
        self.ui.progress_label.setText(CANCELLING)
        self.ui.progress_label.setVisible(True)

    def set_segment_status(self, text: str) -> None:
        """What the click runs now ("Refining…"), or why its refinement stopped; "" hides it."""
        self.ui.status_label.setText(text)
        self.ui.status_label.setVisible(bool(text))

    def set_segmenting(self, on: bool) -> None:
        with QSignalBlocker(self.ui.start_button):
            self.ui.start_button.setChecked(on)
        self.ui.start_button.setText("Stop Segmentation" if on else "Start Segmentation")

    def set_candidates(self, scores: Sequence[float], current: int = 0) -> None:
        """Scores of SAM's candidate masks (shown only when there are several)."""
        show = len(scores) > 1
        self.ui.candidate_row.setVisible(show)
        for i, button in enumerate(self.ui.candidate_buttons[:CANDIDATES]):
            button.setVisible(i < len(scores))
            if i < len(scores):
                button.setText(f"{i + 1} · {scores[i]:.2f}")
                button.setChecked(i == current)

    def set_prompt_summary(self, n_include: int, n_exclude: int, has_box: bool) -> None:
        parts = [f"{n_include} include", f"{n_exclude} exclude"]
        if has_box:
            parts.append("box")
        self.ui.prompt_label.setText("Prompts: " + ", ".join(parts))
        self.ui.undo_button.setEnabled(bool(n_include or n_exclude or has_box))

    def set_can_save(self, can: bool) -> None:
        self.ui.save_button.setEnabled(can)

    def set_can_clear(self, can: bool) -> None:
        """Clear (Esc) is offered while prompts or a preview (also a hover preview) are shown."""
        self.ui.clear_button.setEnabled(can)
