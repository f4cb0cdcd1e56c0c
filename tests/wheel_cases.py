"""Tiny wheels built on the spot: real packages for real pip runs, without the package index."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Dict


def make_wheel(folder: Path, name: str, version: str, files: Dict[str, str]) -> Path:
    """Write ``<name>-<version>-py3-none-any.whl`` into ``folder`` holding ``files`` (path -> text)."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    content = dict(files)
    content[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    content[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    content[f"{info}/RECORD"] = "".join(f"{p},,\n" for p in [*content, f"{info}/RECORD"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in content.items():
            zf.writestr(rel, text)
    return path


def ort_wheel(folder: Path, name: str, version: str) -> Path:
    """A fake ONNX Runtime distribution ``name`` providing the module ``onnxruntime``."""
    return make_wheel(folder, name, version, {
        "onnxruntime/__init__.py": f"__version__ = {version!r}\nBUILD = {name!r}\n",
        "onnxruntime/capi/__init__.py": "",
    })


def fake_dist(site: Path, name: str, version: str, module: bool = True) -> Path:
    """An installed distribution as pip leaves it in ``site`` (metadata, RECORD, and the module)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    records = [f"{info.name}/METADATA", f"{info.name}/RECORD"]
    if module:
        (site / "onnxruntime").mkdir(exist_ok=True)
        (site / "onnxruntime" / "__init__.py").write_text(f"BUILD = {name!r}\n")
        records.append("onnxruntime/__init__.py")
    (info / "RECORD").write_text("".join(f"{r},,\n" for r in records))
    return info
