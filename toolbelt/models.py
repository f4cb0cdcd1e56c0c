"""Which encoder and decoder the panel and the Processing tools use (QGIS adapter over core).

One finder for the whole plugin: the files chosen in the setup dialog where they
exist, else the best pair :mod:`core.models.model_pairs` finds (installed catalogue
models first, in recommended order, then models the user added, then loose
files). It takes a quick look only (cached checks, no hashing, no model opened),
so it is safe in the GUI thread; the setup dialog does the full checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from qgis.core import QgsApplication

from ..core.models import catalogue
from ..core.models.model_manager import discover
from ..core.models.model_pairs import available_pairs, best, installed_files
from ..core.models.model_record import UserRecord, profile_paths
from .metadata import PLUGIN_DIR

LEGACY_MODELS_DIR = PLUGIN_DIR / "models"  # before 0.2; replaced when the plugin is updated


def profile_files() -> Dict[str, Path]:
    """The plugin's model paths in the current QGIS profile (models folder, record, checksum index)."""
    return profile_paths(QgsApplication.qgisSettingsDirPath())


def default_models_dir() -> str:
    """``<profile>/ai_segmentation/models``: kept when the plugin is updated."""
    return str(profile_files()["models"])


def search_folders(models_dir: str) -> List[str]:
    """The models folder, then the plugin's own ``models/`` (older versions put models there)."""
    return list(dict.fromkeys(d for d in (models_dir, str(LEGACY_MODELS_DIR)) if d))


@dataclass(frozen=True)
class ModelFiles:
    """The encoder and decoder to use (None where missing), and where they were looked for."""

    folder: str
    encoder: Optional[str]
    decoder: Optional[str]
    title: str = ""

    @property
    def complete(self) -> bool:
        return self.encoder is not None and self.decoder is not None

    def describe(self) -> str:
        """One line for the dock: what was found, or what is missing and where."""
        if self.complete:
            names = f"{os.path.basename(self.encoder)} + {os.path.basename(self.decoder)}"
            return f"{self.title}: {names}" if self.title else names
        missing = [role for role, path in (("encoder", self.encoder), ("decoder", self.decoder)) if not path]
        return f"no SAM {' or '.join(missing)} .onnx file in {self.folder}"


def find_models(folder: Union[str, Sequence[str]], encoder: str = "", decoder: str = "") -> ModelFiles:
    """The chosen files (``encoder``, ``decoder``) where they exist, else the best pair in ``folder``
    (one folder or several) and the plugin's own ``models/``."""
    folders = [folder] if isinstance(folder, str) else list(folder)
    chosen = {r: p for r, p in (("encoder", encoder), ("decoder", decoder)) if p and os.path.isfile(p)}
    if len(chosen) == 2:
        return ModelFiles(folders[0], chosen["encoder"], chosen["decoder"])
    paths = profile_files()
    record, cat = UserRecord(paths["record"]), catalogue.shipped()
    extra = [p for d in folders for p in installed_files(d, cat)] + list(record.files())
    entries = discover(search_folders(folders[0]) + folders[1:], paths["index"], extra_files=extra, check=False)
    pairs = [p for d in folders for p in available_pairs(d, entries, cat, record)]
    pair = best(pairs)
    if pair is None:
        return ModelFiles(folders[0], chosen.get("encoder"), chosen.get("decoder"))
    return ModelFiles(folders[0], chosen.get("encoder", pair.encoder), chosen.get("decoder", pair.decoder),
                      pair.title if pair.source != "files" else "")
