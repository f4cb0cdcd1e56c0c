"""Plugin settings: one typed dataclass, stored in QgsSettings under "ai_segmentation/".

QSettings never reports a file it cannot read or write: an unreadable settings file silently
gives defaults, and a save into a read-only profile silently stays in memory. Loading therefore
logs why the settings are at their defaults, and saving checks the file and its folder first
(a real write test) and raises :class:`SettingsError` naming them, having changed nothing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, fields, replace
from typing import Any, Optional

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QSettings

from ..core import fs_checks as fs
from ..core.errors import SegmentationError
from ..core.families import providers as pv
from ..core.segment.embedding_cache import default_cache_dir
from ..core.segment.mask_ops import RefineParams
from .models import LEGACY_MODELS_DIR, default_models_dir

PREFIX = "ai_segmentation/"
_REFINE = RefineParams()
_LOG = logging.getLogger("ai_segmentation")
_NOT_SAVED = "the AI Segmentation settings were not saved"


class SettingsError(fs.FileAccessError):
    """The QGIS settings file cannot be written (nothing was saved)."""


def load_problem(qsettings: Optional[QgsSettings] = None) -> str:
    """Why the settings file cannot be read (so the settings are at their defaults), or ""."""
    path = (qsettings or QgsSettings()).fileName()
    if not path or not os.path.lexists(path):
        return ""  # a new profile: defaults are right
    try:
        fs.check_readable_file(path, "QGIS settings file", remedy="give yourself read access to it")
    except fs.FileAccessError as exc:
        return f"{exc}. The AI Segmentation settings are at their defaults until then"
    if QSettings(path, QSettings.Format.IniFormat).status() == QSettings.Status.FormatError:
        return (f"the QGIS settings file '{path}' is damaged; the AI Segmentation settings are at their defaults. "
                "Set them again in Settings > Options > AI Segmentation")
    return ""


def check_writable(qsettings: Optional[QgsSettings] = None) -> str:
    """The settings file's path, after checking that it (and its folder) can be written."""
    path = (qsettings or QgsSettings()).fileName()
    fs.check_folder(os.path.dirname(path), "QGIS profile folder", create=True, error=SettingsError,
                    remedy=f"make it a folder you can write to ({_NOT_SAVED})")
    if os.path.isdir(path):
        raise SettingsError(f"cannot write the QGIS settings file '{path}': it is a folder; "
                            f"remove or rename that folder ({_NOT_SAVED})", path, fs.IS_A_FOLDER)
    if os.path.lexists(path):
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))  # opens for writing, changes nothing
        except OSError as exc:
            raise fs.os_error(exc, "write", "QGIS settings file", path,
                              f"give yourself write access to it ({_NOT_SAVED})", SettingsError) from None
    return path


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
            masks, in raster pixels (see :class:`core.segment.mask_ops.RefineParams`).
        hover_preview: preview the mask under the cursor before clicking (throttled).
        provider: ONNX Runtime execution provider: ``"auto"`` (the best available), ``"cpu"``, or
            a provider name such as ``"CUDAExecutionProvider"`` (see :mod:`core.families.providers`).
        device_id: the GPU's index for that provider.
        gpu_mem_mb: bound of one model's GPU memory, in MiB.
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
    provider: str = pv.AUTO
    device_id: int = 0
    gpu_mem_mb: int = pv.DEFAULT_GPU_MEM_MB

    @classmethod
    def load(cls, qsettings: Optional[QgsSettings] = None) -> Settings:
        """Read the stored settings; missing or unreadable values keep their defaults (and an
        unreadable settings file is logged, naming it)."""
        s = qsettings or QgsSettings()
        problem = load_problem(s)
        if problem:
            _LOG.warning(problem[0].upper() + problem[1:] + ".")
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
        if loaded.provider not in pv.CHOICES:
            _LOG.warning("The execution provider '%s' in the settings is not one this plugin knows; using Auto.",
                         loaded.provider)
            loaded = replace(loaded, provider=pv.AUTO)
        return replace(loaded, cache_max_mb=max(64, loaded.cache_max_mb), threads=max(0, loaded.threads),
                       device_id=max(0, loaded.device_id), gpu_mem_mb=max(256, loaded.gpu_mem_mb))

    def save(self, qsettings: Optional[QgsSettings] = None) -> None:
        """Store every field, on disk now.

        Raises:
            SettingsError: the settings file or its folder cannot be written; nothing was saved.
        """
        s = qsettings or QgsSettings()
        check_writable(s)
        for f in fields(self):
            s.setValue(PREFIX + f.name, getattr(self, f.name))
        s.sync()

    @property
    def encoder_threads(self) -> Optional[int]:
        """Threads argument for ONNX Runtime: None lets it choose."""
        return self.threads or None

    @property
    def provider_choice(self) -> pv.ProviderChoice:
        """The execution provider to run the models on (the CPU being the fallback)."""
        return pv.ProviderChoice(self.provider, self.device_id, self.gpu_mem_mb)

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
