"""Encoder + decoder pairs the plugin can use: installed catalogue models, user-added ones, loose files.

Qt-free. Every pair is judged from what is on disk (discovery results) and the
user's record; a pair with a problem is listed with it and never chosen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .catalogue import Catalogue, CatalogueModel, family_title
from .model_manager import ModelEntry, best_pair, runs
from .model_record import CustomModel, UserRecord


@dataclass(frozen=True)
class ModelPair:
    """An encoder and its decoder.

    Attributes:
        key: ``"catalogue:<id>"``, ``"custom:<name>"`` or ``"files"``.
        source: ``"catalogue"``, ``"custom"`` or ``"files"``.
        problem: why the pair cannot be used (missing or changed file, wrong family); None when usable.
    """

    key: str
    title: str
    family: Optional[str]
    encoder: str
    decoder: str
    source: str
    problem: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        names = f"{os.path.basename(self.encoder)} + {os.path.basename(self.decoder)}"
        return f"{self.title} ({names})" if self.source != "files" else names


def install_dir(models_dir: os.PathLike, model: CatalogueModel) -> Path:
    """Folder of an installed catalogue model."""
    return Path(models_dir) / model.id


def installed_files(models_dir: os.PathLike, catalogue: Catalogue) -> List[str]:
    """Paths of catalogue files present in ``models_dir`` (for discovery)."""
    paths = [install_dir(models_dir, m) / f.name for m in catalogue.models for f in m.files]
    return [os.path.abspath(p) for p in paths if p.is_file()]


def _file_problem(entry: Optional[ModelEntry], name: str, role: str, family: str,
                  expected_sha: Optional[str]) -> Optional[str]:
    if entry is None:
        return f"{name} is missing"
    if entry.error:
        return f"{name} is unusable: {entry.error}"
    if not entry.checked:
        return None  # a quick look: trusted until the setup dialog checks it
    if entry.role != role or entry.family != family:
        return f"{name} is a {family_title(entry.family)} {entry.role}, not the {family_title(family)} {role}"
    if expected_sha is None:
        return f"{name} has no recorded checksum (its download did not finish)"
    if entry.sha256 != expected_sha:
        return f"{name} changed since it was installed (SHA256 {entry.sha256}, recorded {expected_sha})"
    return None


def catalogue_pair(model: CatalogueModel, models_dir: os.PathLike, entries: Dict[str, ModelEntry],
                   record: UserRecord) -> Optional[ModelPair]:
    """The installed copy of ``model`` in ``models_dir``; None when it is not installed there."""
    folder = install_dir(models_dir, model)
    if not folder.is_dir():
        return None
    paths = {f.role: os.path.abspath(folder / f.name) for f in model.files}
    problems = [
        p for f in model.files
        if (p := _file_problem(entries.get(paths[f.role]), f.name, f.role, model.family,
                               f.sha256 or record.recorded_sha256(paths[f.role])))
    ]
    if problems:
        problem = f"{'; '.join(problems)}: the folder {folder} is incomplete or damaged. Download it again."
    elif not runs(model.family):
        problem = f"{family_title(model.family)} models need a newer version of the plugin"
    else:
        problem = None
    return ModelPair(f"catalogue:{model.id}", model.title, model.family, paths["encoder"], paths["decoder"],
                     "catalogue", problem)


def custom_pair(model: CustomModel, entries: Dict[str, ModelEntry]) -> ModelPair:
    problems = [
        p for role, f in (("encoder", model.encoder), ("decoder", model.decoder))
        if (p := _file_problem(entries.get(f.path), f.path, role, model.family, f.sha256))
    ]
    problem = "; ".join(problems) + ". Add it again once the files are back." if problems else None
    return ModelPair(f"custom:{model.name}", model.name, model.family, model.encoder.path, model.decoder.path,
                     "custom", problem)


def available_pairs(models_dir: os.PathLike, entries: Sequence[ModelEntry], catalogue: Catalogue,
                    record: UserRecord) -> List[ModelPair]:
    """Every pair found: catalogue models (recommended order), user-added (by name), then loose files."""
    by_path = {e.path: e for e in entries}
    pairs = [p for m in catalogue.recommended() if (p := catalogue_pair(m, models_dir, by_path, record))]
    pairs += [custom_pair(record.custom[name], by_path) for name in sorted(record.custom)]
    claimed = {p for pair in pairs for p in (pair.encoder, pair.decoder)}
    loose = [e for e in entries if e.path not in claimed]
    found = best_pair([e for e in loose if runs(e.family) or not e.checked])
    if found:
        family = next(e.family for e in loose if e.path == found[0])
        pairs.append(ModelPair("files", "Model files", family, found[0], found[1], "files"))
    return pairs


def best(pairs: Sequence[ModelPair]) -> Optional[ModelPair]:
    """The pair to use when the user chose none: the first usable one."""
    return next((p for p in pairs if p.ok), None)


@dataclass(frozen=True)
class CatalogueRow:
    """One catalogue model as the setup dialog lists it.

    Attributes:
        status: "not installed", "installed", or the problem of the installed copy.
        can_download: a download would be offered (the engine runs this family).
        recommended: the default recommendation for CPU users.
        details: publisher, licence, speed, quality and download size, one per line.
    """

    model: CatalogueModel
    status: str
    can_download: bool
    recommended: bool
    details: str


def catalogue_rows(catalogue: Catalogue, pairs: Sequence[ModelPair]) -> List[CatalogueRow]:
    """The catalogue in recommended order, each with its state in this models folder."""
    by_key = {p.key: p for p in pairs}
    runnable = [m for m in catalogue.recommended() if runs(m.family)]
    rows = []
    for model in catalogue.recommended():
        pair = by_key.get(f"catalogue:{model.id}")
        can_run = runs(model.family)
        if pair is None:
            engine = family_title(model.family)
            status = "not installed" if can_run else f"needs a plugin version with the {engine} engine"
        else:
            status = "installed" if pair.ok else pair.problem
        details = "\n".join([
            f"{model.title}: {family_title(model.family)} family, {model.size_mb:.0f} MB download",
            f"Speed: {model.speed_class}, encoder {model.encoder_s_fp32:g} s per 1024 px crop on 2 CPU cores "
            f"({model.encoder_s_int8:g} s as int8)",
            f"Quality: {model.quality}",
            f"Publisher: {model.publisher}",
            f"Licence: {model.licence}; revision {model.revision[:10]}",
            "Checked by SHA256: " + ", ".join(
                f"{f.name} ({'published' if f.verify == 'pinned' else 'served by the host, then recorded'})"
                for f in model.files),
        ])
        rows.append(CatalogueRow(model, status, can_run, bool(runnable) and model is runnable[0], details))
    return rows
