"""Which ONNX Runtime package fits this machine, and which ones are installed.

Qt-free, and nothing is imported or run: the accelerator is recognised by the
files its driver installs (Linux ``/proc/driver/nvidia/version`` or
``/dev/nvidiactl``; Windows ``System32\\nvcuda.dll``, or ``d3d12.dll`` on Windows
10 and later), the installed packages by their metadata. The filesystem root and
the platform are parameters, so detection can be tried on fake trees.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from ..dependency_manager import ORT_PACKAGES, REQUIREMENTS

CPU, GPU, DIRECTML, OPENVINO = ORT_PACKAGES
# The NVIDIA libraries onnxruntime-gpu >= 1.21 can pull as pip extras (CUDA 12, cuDNN 9): several GB.
CUDA_EXTRAS = "[cuda,cudnn]"
# What each package runs the models on, for the user.
DEVICES = {CPU: "the CPU", GPU: "an NVIDIA GPU (CUDA)", DIRECTML: "any DirectX 12 GPU (DirectML)",
           OPENVINO: "Intel CPUs, GPUs and NPUs (OpenVINO)"}
# Short names for the buttons ("Use the GPU package (onnxruntime-gpu)…").
KINDS = {CPU: "CPU", GPU: "GPU", DIRECTML: "DirectML", OPENVINO: "OpenVINO"}
# Rough download sizes, so the consent text can say what to expect.
SIZES = {CPU: "about 15 MB", GPU: "a few hundred MB", DIRECTML: "about 25 MB", OPENVINO: "about 50 MB"}
_NVIDIA_VERSION = re.compile(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)")


@dataclass(frozen=True)
class Machine:
    """Where to look for drivers.

    Attributes:
        platform: ``sys.platform`` (``"linux"``, ``"win32"``, ``"darwin"``).
        root: the filesystem root (``/``) on Linux and macOS; the Windows folder (``%SystemRoot%``) on Windows.
        windows_major: Windows major version (10 for Windows 10 and 11), None elsewhere.
    """

    platform: str
    root: Path
    windows_major: Optional[int] = None

    @classmethod
    def this(cls) -> Machine:
        """The machine QGIS runs on."""
        if sys.platform.startswith("win"):
            major = sys.getwindowsversion().major  # type: ignore[attr-defined]  # Windows only
            return cls(sys.platform, Path(os.environ.get("SYSTEMROOT", r"C:\Windows")), major)
        return cls(sys.platform, Path("/"))


@dataclass(frozen=True)
class Offer:
    """The ONNX Runtime package that fits a machine.

    Attributes:
        package: distribution name (one of :data:`~.dependency_manager.ORT_PACKAGES`).
        reason: one line for the user: what was found and what the package does with it.
    """

    package: str
    reason: str


def choices(platform: str) -> List[str]:
    """The ONNX Runtime packages published for ``platform`` (OpenVINO only ever as an explicit choice)."""
    if platform.startswith("win"):
        return [CPU, GPU, DIRECTML, OPENVINO]
    if platform.startswith("linux"):
        return [CPU, GPU, OPENVINO]
    return [CPU]  # macOS: CoreML is in the standard package


def fitting_package(machine: Machine) -> Offer:
    """The package that fits ``machine``, and why."""
    cpu = f"the standard {CPU} package runs the models on the CPU"
    gpu = f"{GPU} runs the models on the GPU (CUDA)"
    if machine.platform == "darwin":
        return Offer(CPU, f"macOS: the standard {CPU} package already includes CoreML (Apple GPU and Neural "
                          "Engine): nothing to switch")
    if machine.platform.startswith("win"):
        system32 = machine.root / "System32"
        if (system32 / "nvcuda.dll").is_file():
            return Offer(GPU, f"NVIDIA driver found ({system32 / 'nvcuda.dll'}): {gpu}")
        if (machine.windows_major or 0) >= 10 and (system32 / "d3d12.dll").is_file():
            return Offer(DIRECTML, f"DirectX 12 found ({system32 / 'd3d12.dll'}): {DIRECTML} runs the models on "
                                   "the GPU (DirectML)")
        return Offer(CPU, f"no NVIDIA driver and no DirectX 12 found: {cpu}")
    if machine.platform.startswith("linux"):
        version_file = machine.root / "proc" / "driver" / "nvidia" / "version"
        try:
            found = _NVIDIA_VERSION.search(version_file.read_text(encoding="utf-8", errors="replace"))
        except OSError:  # no NVIDIA kernel module loaded
            found = None
        if found:
            return Offer(GPU, f"NVIDIA driver {found.group(1)} found: {gpu}")
        if (machine.root / "dev" / "nvidiactl").exists():
            return Offer(GPU, f"NVIDIA driver found ({machine.root / 'dev' / 'nvidiactl'}): {gpu}")
        return Offer(CPU, f"no NVIDIA driver found: {cpu}")
    return Offer(CPU, f"{machine.platform}: {cpu}")


def pip_spec(package: str, cuda_libs: bool = False) -> str:
    """What to ask pip for: ``"onnxruntime-gpu[cuda,cudnn]>=1.15.0"`` with the NVIDIA libraries."""
    extras = CUDA_EXTRAS if cuda_libs and package == GPU else ""
    minimum = next(r.minimum for r in REQUIREMENTS if r.name == CPU)
    return f"{package}{extras}>={minimum}"


@dataclass(frozen=True)
class InstalledRuntime:
    """One installed ONNX Runtime distribution.

    Attributes:
        name: distribution name (``onnxruntime-gpu``).
        version: its version.
        folder: the sys.path folder it is installed in.
        private: True when that is the plugin's private folder (the plugin may replace it).
    """

    name: str
    version: str
    folder: Path
    private: bool

    def describe(self) -> str:
        """One line for the user, e.g. ``"onnxruntime-gpu 1.20.1 (the plugin's folder)"``."""
        where = "the plugin's folder" if self.private else f"QGIS's Python: {self.folder}"
        return f"{self.name} {self.version} ({where})"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_runtimes(private: os.PathLike, paths: Optional[Sequence[str]] = None) -> List[InstalledRuntime]:
    """The ONNX Runtime distributions in ``paths`` (default ``sys.path``) and in ``private``, in path order.

    Found by metadata only (nothing imported). The same distribution seen twice in
    one folder (two path entries naming it) is listed once.
    """
    importlib.invalidate_caches()
    private_dir = Path(private).resolve()
    search = [p for p in (sys.path if paths is None else paths) if p]
    if os.fspath(private) not in search:
        search.append(os.fspath(private))
    found: List[InstalledRuntime] = []
    for dist in importlib.metadata.distributions(path=search):
        name = canonical(dist.metadata["Name"] or "")
        if name not in ORT_PACKAGES:
            continue
        folder = Path(os.fspath(dist.locate_file(""))).resolve()
        runtime = InstalledRuntime(name, dist.version, folder, folder == private_dir)
        if runtime not in found:
            found.append(runtime)
    return found


def runtime_warning(installed: Sequence[InstalledRuntime]) -> Optional[str]:
    """A warning when more than one ONNX Runtime package is installed, else None."""
    if len(installed) < 2:
        return None
    return (
        f"Several ONNX Runtime packages are installed: {'; '.join(r.describe() for r in installed)}. They all "
        "provide the module 'onnxruntime' and overwrite each other's files (the first one listed is the one "
        "loaded). Keep one: switching below replaces those in the plugin's folder; remove the others from "
        "QGIS's Python by hand."
    )


def restart_note(package: str) -> str:
    """Whether QGIS must be restarted to use ``package``: when onnxruntime is already loaded in this process."""
    if "onnxruntime" in sys.modules:
        return f"onnxruntime is already loaded in this QGIS session: restart QGIS to use {package}."
    return ""


def switch_offers(offer: Offer, installed: Sequence[InstalledRuntime], backups: Sequence[str]) -> List[str]:
    """The switches worth a button: to ``offer.package`` unless it is the one installed, and back to the
    CPU package when another one is installed, or only a backup is left."""
    names = [r.name for r in installed]
    offers = [] if offer.package == CPU or names == [offer.package] else [offer.package]
    if any(n != CPU for n in names) or (backups and not names):
        offers.append(CPU)
    return offers
