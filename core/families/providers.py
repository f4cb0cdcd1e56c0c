"""Which ONNX Runtime execution provider runs a model, with the CPU always the fallback.

The choice (Options: Auto, CPU, or one provider and its device id) becomes a list of
``(provider, options)`` for ``InferenceSession`` through :func:`plan`, a pure function of the
choice and of the providers the installed onnxruntime offers. :class:`ManagedSession` opens it
and keeps the CPU as the fallback twice: when the provider does not start (onnxruntime then
leaves it out of ``get_providers()``, or raises) and when a run fails on it. Each fallback is
logged once, in the plugin's words, and :attr:`ManagedSession.note` says why for the dock.

Memory: the CPU keeps the encoder's low-memory options (see :func:`onnx_session.open_session`).
On a GPU, the arena is bounded (``gpu_mem_limit``), grows only by what a run asks for, is
shrunk after each run, and :meth:`ManagedSession.release` drops the whole session (weights
included) while QGIS keeps running; the next run opens it again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import first_line

log = logging.getLogger("ai_segmentation")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
DIRECTML = "DmlExecutionProvider"
COREML = "CoreMLExecutionProvider"
OPENVINO = "OpenVINOExecutionProvider"
AUTO = "auto"
# Auto's preference. TensorRT is left out: it builds an engine per input shape, for minutes.
AUTO_ORDER = (CUDA, DIRECTML, COREML, OPENVINO)
TITLES = {CPU: "CPU", CUDA: "CUDA", TENSORRT: "TensorRT", DIRECTML: "DirectML", COREML: "CoreML",
          OPENVINO: "OpenVINO"}
CHOICES = (AUTO, CPU, CUDA, TENSORRT, DIRECTML, COREML, OPENVINO)  # the Options list, in order
GPU_PACKAGE = {CUDA: "onnxruntime-gpu", TENSORRT: "onnxruntime-gpu", DIRECTML: "onnxruntime-directml",
               COREML: "onnxruntime (macOS)", OPENVINO: "onnxruntime-openvino"}
DEFAULT_GPU_MEM_MB = 8192  # per session; ViT-H encodes in about 6 GB on CUDA

Providers = List[Tuple[str, Dict[str, str]]]


def title(provider: str) -> str:
    """``"CUDA"`` for ``"CUDAExecutionProvider"``; ``"Auto"`` for ``"auto"``."""
    return "Auto" if provider == AUTO else TITLES.get(provider, provider.replace("ExecutionProvider", ""))


@dataclass(frozen=True)
class ProviderChoice:
    """What the user chose in Options.

    Attributes:
        name: :data:`AUTO`, :data:`CPU` or another name of :data:`CHOICES`.
        device_id: the GPU's index (CUDA, TensorRT, DirectML, OpenVINO ``GPU.<id>``).
        gpu_mem_mb: bound of one session's GPU arena, in MiB (CUDA, TensorRT).
    """

    name: str = AUTO
    device_id: int = 0
    gpu_mem_mb: int = DEFAULT_GPU_MEM_MB


@dataclass(frozen=True)
class Plan:
    """What to ask onnxruntime for.

    Attributes:
        providers: ``(name, options)`` in priority order, the CPU last.
        note: why the chosen provider is not in it ("" when it is, or the CPU was chosen).
    """

    providers: Providers
    note: str = ""

    @property
    def wanted(self) -> str:
        return self.providers[0][0]


def provider_options(name: str, choice: ProviderChoice) -> Dict[str, str]:
    """onnxruntime options of ``name`` for ``choice`` (strings, as onnxruntime takes them)."""
    dev, limit = str(max(0, choice.device_id)), str(max(256, choice.gpu_mem_mb) * 1024 * 1024)
    if name == CUDA:
        # kSameAsRequested: the arena grows by what a run needs, not by doubling, so the bound holds.
        return {"device_id": dev, "gpu_mem_limit": limit, "arena_extend_strategy": "kSameAsRequested",
                "cudnn_conv_algo_search": "HEURISTIC"}
    if name == TENSORRT:
        return {"device_id": dev, "trt_max_workspace_size": limit}
    if name == DIRECTML:
        return {"device_id": dev}
    if name == OPENVINO:
        # FP32 like every other provider here, so that cached embeddings mean the same (see below).
        return {"device_type": f"GPU.{dev}" if choice.device_id else "GPU", "precision": "FP32"}
    return {}


def plan(choice: ProviderChoice, available: Sequence[str]) -> Plan:
    """The providers for ``choice`` given onnxruntime's ``available`` ones (pure).

    Auto takes the first of :data:`AUTO_ORDER` that is available, else the CPU. A named
    provider that is not available gives the CPU and a note saying what to install.
    """
    cpu: Providers = [(CPU, {})]
    if choice.name == CPU:
        return Plan(cpu)
    if choice.name == AUTO:
        name = next((p for p in AUTO_ORDER if p in available), CPU)
        return Plan(cpu if name == CPU else [(name, provider_options(name, choice)), *cpu])
    if choice.name not in CHOICES:
        return Plan(cpu, f"the execution provider '{choice.name}' set in Options is not one this plugin "
                         f"knows ({', '.join(title(c) for c in CHOICES)}): running on the CPU")
    if choice.name not in available:
        have = ", ".join(title(p) for p in available) or "none"
        return Plan(cpu, f"{title(choice.name)} is set in Options, but the installed onnxruntime does not offer it "
                         f"(it offers {have}): running on the CPU. Install {GPU_PACKAGE[choice.name]} from "
                         "the AI Segmentation setup dialog, or choose Auto")
    return Plan([(choice.name, provider_options(choice.name, choice)), *cpu])


def available_providers(ort: Any) -> List[str]:
    """What the installed onnxruntime offers (the CPU alone if it cannot say)."""
    try:
        return list(ort.get_available_providers())
    except Exception:
        return [CPU]


def shrink_entry(provider: str, device_id: int) -> str:
    """``memory.enable_memory_arena_shrinkage`` for a run on ``provider``: the CPU arena, and the
    GPU's where onnxruntime has a shrinkable one (CUDA)."""
    return f"cpu:0;gpu:{max(0, device_id)}" if provider == CUDA else "cpu:0"


class ManagedSession:
    """An ``InferenceSession`` on the planned provider, falling back to the CPU, releasable.

    Args:
        open_on: opens the file on a :data:`Providers` list (the CPU alone for the fallback).
        plan: see :func:`plan`.
        what: the model, for messages ("SAM encoder model '/path/x.onnx'").
        device_id: for the GPU arena shrink entry.
    """

    def __init__(self, open_on: Callable[[Providers], Any], plan: Plan, what: str, device_id: int = 0) -> None:
        self._open_on, self._what, self.device_id = open_on, what, device_id
        self._lock = threading.Lock()
        self.note = plan.note
        self._session: Any = None
        self._providers = plan.providers
        if self.note:
            log.warning("%s: %s.", what, self.note)
        self._start()

    def _start(self) -> None:
        """Open on the planned providers; on the CPU alone when the first one fails or is left out."""
        wanted = self._providers[0][0]
        if wanted == CPU:
            self._session = self._open_on(self._providers)
            return
        try:
            session = self._open_on(self._providers)
        except Exception as exc:
            self._to_cpu(f"{title(wanted)} could not start ({first_line(exc)})")
            return
        if wanted not in session.get_providers():
            self._to_cpu(f"{title(wanted)} could not start (onnxruntime left it out: a missing CUDA, cuDNN "
                         "or driver library, see the QGIS log)")
            return
        self._session = session

    def _to_cpu(self, why: str) -> None:
        self._providers = [(CPU, {})]
        self.note = f"{why}; running on the CPU"
        log.warning("%s: %s.", self._what, self.note)
        self._session = self._open_on(self._providers)

    @property
    def provider(self) -> str:
        """The provider that runs the model (the first of the session's)."""
        return self._providers[0][0]

    @property
    def on_gpu(self) -> bool:
        return self.provider != CPU

    def get_inputs(self) -> Any:
        return self._open().get_inputs()

    def get_outputs(self) -> Any:
        return self._open().get_outputs()

    def get_providers(self) -> List[str]:
        return self._open().get_providers()

    def _open(self) -> Any:
        with self._lock:
            if self._session is None:
                self._session = self._open_on(self._providers)
            return self._session

    def run(self, outputs: Optional[List[str]], feed: Dict[str, Any], run_options: Any = None) -> List[Any]:
        """``InferenceSession.run``; a failure on a GPU (not a cancel) reruns on the CPU for good."""
        session = self._open()
        try:
            return session.run(outputs, feed, run_options)
        except Exception as exc:
            if run_options is not None and run_options.terminate:
                raise
            self._fail_over(session, exc)
            return self._open().run(outputs, feed, run_options)

    def _fail_over(self, session: Any, exc: Exception) -> None:
        """``session`` failed while running: re-raise on the CPU, else go to the CPU for good (once,
        whichever thread sees the failure first)."""
        if not self.on_gpu:
            raise exc
        with self._lock:
            if self._session is session:
                self._to_cpu(f"{title(self.provider)} failed while running ({first_line(exc)})")

    def bound_runner(self, constants: Dict[str, Any], outputs: List[str],
                     device: Optional[str] = None) -> Callable[[Dict[str, Any]], List[Any]]:
        """``run(feed)`` for many runs sharing ``constants`` (one image's tensors, for "segment
        everything"): on CUDA they are copied to the device once (IOBinding), not on every run.

        ``device``: where to bind them; None: ``"cuda"`` on CUDA and TensorRT, elsewhere no binding
        (``"cpu"`` binds in host memory: tests). A failing bound run falls back as :meth:`run` does.
        """
        session = self._open()
        if device is None and self.provider in (CUDA, TENSORRT):
            device = "cuda"
        if device is None:
            return lambda feed: self.run(outputs, {**constants, **feed})
        import onnxruntime as ort  # present: the session is open

        binding = session.io_binding()
        for name, value in constants.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, device, self.device_id))

        def run(feed: Dict[str, Any]) -> List[Any]:
            if self._session is not session:  # fell back or released since: plain runs
                return self.run(outputs, {**constants, **feed})
            for name, value in feed.items():
                binding.bind_cpu_input(name, value)
            for name in outputs:
                binding.bind_output(name, "cpu")
            try:
                session.run_with_iobinding(binding)
            except Exception as exc:  # onnxruntime raises private types
                self._fail_over(session, exc)
                return self.run(outputs, {**constants, **feed})
            return binding.copy_outputs_to_cpu()

        return run

    def release(self) -> bool:
        """Drop a GPU session (its weights and arena go back to the device); True if one was held.
        The next call opens it again. CPU sessions stay: their memory is already given back."""
        with self._lock:
            if not self.on_gpu or self._session is None:
                return False
            self._session = None
            return True


def describe(runs: Sequence[Tuple[str, ManagedSession]]) -> Tuple[str, bool]:
    """One line for the panel and whether it is a warning (a fallback), e.g.
    ``("Runs on CUDA (GPU 0): encoder and decoder", False)``; ``("", False)`` before any loads."""
    if not runs:
        return "", False
    by_provider: Dict[str, List[str]] = {}
    for role, session in runs:
        where = title(session.provider) + (f" (GPU {session.device_id})" if session.on_gpu else "")
        by_provider.setdefault(where, []).append(role)
    parts = [f"{where}: {' and '.join(roles)}" for where, roles in by_provider.items()]
    notes = sorted({session.note for _, session in runs if session.note})
    text = "Runs on " + "; ".join(parts) + ("" if not notes else ". " + ". ".join(n[0].upper() + n[1:] for n in notes))
    return text, bool(notes)
