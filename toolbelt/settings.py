"""Plugin settings: one typed dataclass, stored in QgsSettings under "ai_segmentation/"."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Optional

from qgis.core import QgsSettings

from ..core.embedding_cache import default_cache_dir
from ..core.errors import SegmentationError
from ..core.mask_ops import RefineParams
from .models import LEGACY_MODELS_DIR, default_models_dir

PREFIX = "ai_segmentation/"
_REFINE = RefineParams()


@dataclass(frozen=True)
class Settings:
    """Every user setting of the plugin.

    Attributes:
        models_dir: folder of the model files (empty: ``<profile>/ai_segmentation/models``).
        encoder_path, decoder_path: the files chosen in the setup dialog ("": the best in
            ``models_dir``).
        cache_dir: folder of the on-disk embedding cache (empty: the per-user cache folder).
        cache_max_mb: size limit of that cache, in MiB (oldest entries go first).
        threads: ONNX Runtime threads for the encoder; 0 lets it choose.
        simplify_px, fill_holes_px, min_area_px, largest_only: default refinement of saved
            masks, in raster pixels (see :class:`core.mask_ops.RefineParams`).
        hover_preview: preview the mask under the cursor before clicking (throttled).
    """

    models_dir: str = ""
    encoder_path: str = ""
    decoder_path: str = ""
    cache_dir: str = ""
    cache_max_mb: int = 2048
    threads: int = 0
    simplify_px: float = _REFINE.simplify_px
    fill_holes_px: int = _REFINE.fill_holes_px
    min_area_px: int = _REFINE.min_area_px
    largest_only: bool = _REFINE.largest_only
    hover_preview: bool = False

    @classmethod
    def load(cls, qsettings: Optional[QgsSettings] = None) -> Settings:
        """Read the stored settings; missing or unreadable values keep their defaults."""
        s = qsettings or QgsSettings()
        values: dict = {}
        for f in fields(cls):
            default = getattr(cls, f.name)
            kind = type(default)
            raw: Any = s.value(PREFIX + f.name, default)
            values[f.name] = _coerce(raw, kind, default)
        loaded = cls(**values)
        if not loaded.cache_dir:
            loaded = replace(loaded, cache_dir=default_cache_dir())
        if loaded.models_dir in ("", str(LEGACY_MODELS_DIR)):  # the old default: updates replace that folder
            loaded = replace(loaded, models_dir=default_models_dir())
        try:
            loaded.refine  # noqa: B018 (validates the stored sizes)
        except SegmentationError:
            loaded = replace(loaded, simplify_px=_REFINE.simplify_px, fill_holes_px=_REFINE.fill_holes_px,
                             min_area_px=_REFINE.min_area_px)
        return replace(loaded, cache_max_mb=max(64, loaded.cache_max_mb), threads=max(0, loaded.threads))

    def save(self, qsettings: Optional[QgsSettings] = None) -> None:
        """Store every field."""
        s = qsettings or QgsSettings()
        for f in fields(self):
            s.setValue(PREFIX + f.name, getattr(self, f.name))

    @property
    def encoder_threads(self) -> Optional[int]:
        """Threads argument for ONNX Runtime: None lets it choose."""
        return self.threads or None

    @property
    def cache_max_bytes(self) -> int:
        return int(self.cache_max_mb) * 1024 * 1024

    @property
    def refine(self) -> RefineParams:
        """Default refinement of saved masks."""
        return RefineParams(self.simplify_px, self.fill_holes_px, self.min_area_px, self.largest_only)


def _coerce(raw: Any, kind: type, default: Any) -> Any:
    """QSettings returns strings from .ini files: convert them back to the field's type."""
    try:
        if kind is bool:
            if isinstance(raw, str):
                return raw.strip().lower() in ("1", "true", "yes", "on")
            return bool(raw)
        return kind(raw)
    except (TypeError, ValueError):
        return default
