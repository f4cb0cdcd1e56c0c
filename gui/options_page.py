"""The plugin's page in QGIS Settings > Options."""

from __future__ import annotations

from typing import Callable, Optional

from qgis.gui import (
    QgsDoubleSpinBox,
    QgsFileWidget,
    QgsOptionsPageWidget,
    QgsOptionsWidgetFactory,
    QgsSpinBox,
)
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from ..core.families import providers as pv
from ..core.segment.embedding_cache import EmbeddingCache
from ..toolbelt.log import guarded
from ..toolbelt.metadata import icon_path, plugin_name, plugin_version
from ..toolbelt.settings import Settings

OnSaved = Callable[[Settings], None]


class OptionsPage(QgsOptionsPageWidget):
    """Edits :class:`Settings`; ``apply`` stores them and calls ``on_saved``."""

    def __init__(self, parent: Optional[object] = None, on_saved: Optional[OnSaved] = None) -> None:
        super().__init__(parent)
        self._on_saved = on_saved
        s = Settings.load()
        col = QVBoxLayout(self)
        col.addWidget(QLabel(f"{plugin_name()} {plugin_version()}"))

        models = QGroupBox("Models and cache")
        form = QFormLayout(models)
        self.models_dir = QgsFileWidget()
        self.models_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.models_dir.setFilePath(s.models_dir)
        form.addRow("Models folder", self.models_dir)
        self.encoder_path = self._onnx_widget(s.encoder_path, "Encoder (.onnx); empty: the best in the folder")
        form.addRow("Encoder file", self.encoder_path)
        self.decoder_path = self._onnx_widget(s.decoder_path, "Decoder (.onnx); empty: the one in the folder")
        form.addRow("Decoder file", self.decoder_path)
        self.cache_dir = QgsFileWidget()
        self.cache_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.cache_dir.setFilePath(s.cache_dir)
        form.addRow("Embedding cache folder", self.cache_dir)
        self.cache_mb = QgsSpinBox()
        self.cache_mb.setRange(64, 1_000_000)
        self.cache_mb.setSuffix(" MiB")
        self.cache_mb.setValue(s.cache_max_mb)
        self.cache_mb.setToolTip("Each encoded 1024 px crop takes 2 MiB; the least recently used go first")
        form.addRow("Cache size limit", self.cache_mb)
        cache_row = QHBoxLayout()
        self.cache_used = QLabel()
        clear = QPushButton("Clear cache")
        clear.clicked.connect(self._clear_cache)
        cache_row.addWidget(self.cache_used, 1)
        cache_row.addWidget(clear)
        form.addRow("", cache_row)
        self.threads = QgsSpinBox()
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText("automatic")
        self.threads.setValue(s.threads)
        self.threads.setToolTip("CPU threads of the image encoder; automatic uses every core")
        form.addRow("Encoder threads", self.threads)
        col.addWidget(models)
        col.addWidget(self._runtime_group(s))

        refine = QGroupBox("Default refinement of saved masks")
        form = QFormLayout(refine)
        self.simplify = QgsDoubleSpinBox()
        self.simplify.setRange(0.0, 50.0)
        self.simplify.setSuffix(" px")
        self.simplify.setValue(s.simplify_px)
        self.min_area = QgsSpinBox()
        self.min_area.setRange(0, 1_000_000_000)
        self.min_area.setSuffix(" px²")
        self.min_area.setValue(s.min_area_px)
        self.fill_holes = QgsSpinBox()
        self.fill_holes.setRange(0, 1_000_000_000)
        self.fill_holes.setSuffix(" px²")
        self.fill_holes.setValue(s.fill_holes_px)
        self.largest_only = QCheckBox("Keep the largest part only")
        self.largest_only.setChecked(s.largest_only)
        form.addRow("Simplify", self.simplify)
        form.addRow("Minimum area", self.min_area)
        form.addRow("Fill holes under", self.fill_holes)
        form.addRow("", self.largest_only)
        col.addWidget(refine)

        self.hover = QCheckBox("Preview the mask under the cursor before clicking (uses more CPU)")
        self.hover.setChecked(s.hover_preview)
        col.addWidget(self.hover)
        col.addStretch(1)
        self._show_cache_size()

    def _runtime_group(self, s: Settings) -> QGroupBox:
        group = QGroupBox("Execution provider (CPU or GPU)")
        form = QFormLayout(group)
        self.provider = QComboBox()
        for name in pv.CHOICES:
            self.provider.addItem(pv.title(name), name)
        self.provider.setCurrentIndex(max(0, self.provider.findData(s.provider)))
        self.provider.setToolTip("Auto takes the best provider the installed onnxruntime offers; the CPU is "
                                 "used whenever a provider cannot start or run (the panel says so)")
        form.addRow("Run models on", self.provider)
        self.device_id = QgsSpinBox()
        self.device_id.setRange(0, 63)
        self.device_id.setValue(s.device_id)
        self.device_id.setToolTip("Index of the GPU (0: the first), for CUDA, TensorRT, DirectML and OpenVINO")
        form.addRow("GPU device", self.device_id)
        self.gpu_mem = QgsSpinBox()
        self.gpu_mem.setRange(256, 1_048_576)
        self.gpu_mem.setSuffix(" MiB")
        self.gpu_mem.setValue(s.gpu_mem_mb)
        self.gpu_mem.setToolTip("The most GPU memory one model may take (CUDA, TensorRT); models idle for "
                                "a minute give theirs back")
        form.addRow("GPU memory per model", self.gpu_mem)
        self.available = QLabel(available_text())
        self.available.setWordWrap(True)
        form.addRow("", self.available)
        return group

    @staticmethod
    def _onnx_widget(path: str, tip: str) -> QgsFileWidget:
        widget = QgsFileWidget()
        widget.setFilter("ONNX models (*.onnx)")
        widget.setFilePath(path)
        widget.setToolTip(tip)
        return widget

    def settings(self) -> Settings:
        """The settings as edited on the page."""
        return Settings(
            models_dir=self.models_dir.filePath(),
            encoder_path=self.encoder_path.filePath(),
            decoder_path=self.decoder_path.filePath(),
            cache_dir=self.cache_dir.filePath(),
            cache_max_mb=self.cache_mb.value(),
            threads=self.threads.value(),
            simplify_px=self.simplify.value(),
            fill_holes_px=self.fill_holes.value(),
            min_area_px=self.min_area.value(),
            largest_only=self.largest_only.isChecked(),
            hover_preview=self.hover.isChecked(),
            provider=self.provider.currentData(),
            device_id=self.device_id.value(),
            gpu_mem_mb=self.gpu_mem.value(),
        )

    @guarded
    def apply(self) -> None:
        settings = self.settings()
        settings.save()
        if self._on_saved is not None:
            self._on_saved(Settings.load())

    def _cache(self) -> EmbeddingCache:
        return EmbeddingCache(self.cache_dir.filePath() or None, self.cache_mb.value() * 1024 * 1024)

    def _show_cache_size(self) -> None:
        self.cache_used.setText(f"{self._cache().size_bytes() / 1024**2:.0f} MiB in use")

    @guarded
    def _clear_cache(self, *_args: object) -> None:
        self._cache().clear()
        self._show_cache_size()


def available_text() -> str:
    """What the installed onnxruntime offers, for the page (imports it: the page is opened by hand)."""
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed: install it from the AI Segmentation setup dialog."
    names = ", ".join(pv.title(p) for p in pv.available_providers(onnxruntime))
    return f"The installed onnxruntime {onnxruntime.__version__} offers: {names}."


class OptionsFactory(QgsOptionsWidgetFactory):
    """Registers :class:`OptionsPage` with ``iface.registerOptionsWidgetFactory``."""

    def __init__(self, on_saved: Optional[OnSaved] = None) -> None:
        super().__init__(plugin_name(), QIcon(icon_path()))
        self._on_saved = on_saved

    def icon(self) -> QIcon:
        return QIcon(icon_path())

    def createWidget(self, parent: Optional[object] = None) -> OptionsPage:  # noqa: N802 (Qt override)
        return OptionsPage(parent, self._on_saved)
