"""Loading and validating ONNX Runtime sessions for SAM models.

``onnxruntime`` is imported lazily so the plugin can load, and offer to
install it, when it is missing.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .. import fs_checks as fs
from ..errors import MissingDependencyError, ModelError, SegmentationError, first_line
from . import providers as pv

log = logging.getLogger("ai_segmentation")
ONNX_MAGIC_MIN_BYTES = 16  # anything shorter cannot be an ONNX model
_LOW_MEMORY_DISABLED = ["ConstantFolding"]


@dataclass(frozen=True)
class TensorSpec:
    """Name and rank of one graph input or output."""

    name: str
    rank: int

    def __str__(self) -> str:
        return f"{self.name} (rank {self.rank})"


def import_onnxruntime() -> Any:
    """Return the ``onnxruntime`` module or raise :class:`MissingDependencyError`."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            "onnxruntime is not installed; install it from the AI Segmentation setup "
            f"dialog or with 'pip install onnxruntime' ({exc})"
        ) from None
    return onnxruntime


def session_options(threads: Optional[int]) -> Any:
    """CPU session options: quiet logs, ``threads`` intra-op threads (None: onnxruntime's choice)."""
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only; warnings are not the user's business
    if threads:
        so.intra_op_num_threads = int(threads)
    # Idle workers must not spin between runs: numpy's own threads need the cores right after.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def shrinking_run_options(arenas: str = "cpu:0") -> Any:
    """Run options that give the memory of ``arenas`` (see :func:`providers.shrink_entry`) back when
    the run ends."""
    ort = import_onnxruntime()
    ro = ort.RunOptions()
    ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", arenas)
    return ro


def check_file(path: str, role: str) -> int:
    """The size of ``path`` in bytes; :class:`ModelError` if it is missing, a folder, unreadable
    or too short to be ONNX."""
    fs.check_readable_file(path, f"SAM {role} file", ModelError)
    size = os.path.getsize(path)
    if size < ONNX_MAGIC_MIN_BYTES:
        raise ModelError(f"SAM {role} model '{path}' is not an ONNX model: the file holds only {size} bytes")
    return size


def open_session(path: str, role: str, threads: Optional[int] = None, low_memory: bool = False,
                 provider: Optional[pv.ProviderChoice] = None,
                 available: Optional[Sequence[str]] = None) -> pv.ManagedSession:
    """Open ``path`` as an ONNX Runtime session, raising :class:`ModelError` on any failure.

    ``provider`` (default: the CPU) picks the execution provider, the CPU being the fallback
    (see :mod:`.providers`). ``low_memory`` (for the encoder) skips constant folding on the CPU:
    on ViT-B it makes one encode peak at 1.8 GB instead of 3.2 GB (6.3 GB with the arena never
    shrunk), at the same speed; the other graph optimisations stay on. Run such sessions with
    :func:`run_cancellable`, which shrinks the arenas after each run.
    ``available``: the providers to plan with (default: what the installed onnxruntime offers).
    """
    path = os.fspath(path)
    size = check_file(path, role)
    ort = import_onnxruntime()
    choice = provider or pv.ProviderChoice(pv.CPU)

    def open_on(providers: pv.Providers) -> Any:
        cpu_only = providers[0][0] == pv.CPU
        try:
            return ort.InferenceSession(
                path, session_options(threads), providers=[p for p, _ in providers],
                provider_options=[o for _, o in providers],
                disabled_optimizers=_LOW_MEMORY_DISABLED if low_memory and cpu_only else None,
            )
        except Exception as exc:  # onnxruntime raises several private exception types
            if not cpu_only:
                raise  # ManagedSession falls back to the CPU
            raise ModelError(
                f"SAM {role} model '{path}' could not be loaded: it is not a valid ONNX file, or it is "
                f"truncated ({size} bytes). onnxruntime said: {first_line(exc)}"
            ) from None

    plan = pv.plan(choice, pv.available_providers(ort) if available is None else available)
    if plan.wanted in (pv.CUDA, pv.TENSORRT):
        _preload_cuda(ort)
    return pv.ManagedSession(open_on, plan, f"SAM {role} model '{path}'", choice.device_id)


@functools.lru_cache(maxsize=1)
def _preload_cuda(ort: Any) -> None:
    """Load the CUDA and cuDNN libraries of the NVIDIA wheels (``onnxruntime-gpu[cuda,cudnn]`` in the
    plugin's private folder), once: onnxruntime finds them only this way (1.21+). Without those
    wheels it finds nothing and the system's libraries are used, or the CPU takes over."""
    if not hasattr(ort, "preload_dlls"):
        return
    try:
        ort.preload_dlls()
    except Exception as exc:  # a partial CUDA install: the provider's own start says more
        log.info("onnxruntime could not preload the CUDA libraries: %s", first_line(exc))


class EncodeCancelledError(SegmentationError):
    """An encode was stopped by its :class:`CancelToken`; nothing was produced."""


class CancelToken:
    """Stops running encodes from another thread, within about one graph node.

    Calling the token tells whether it was cancelled (or, when given, whether
    ``is_canceled()`` says so), so it can stand wherever an ``is_canceled``
    callable is expected. :meth:`cancel` sets ``terminate`` on the RunOptions of
    every run attached at that moment, and on any attached later.
    """

    def __init__(self, is_canceled: Optional[Callable[[], bool]] = None) -> None:
        self._poll = is_canceled
        self._cancelled = False
        self._lock = threading.Lock()
        self._runs: List[Any] = []

    def __call__(self) -> bool:
        return self._cancelled or bool(self._poll and self._poll())

    @property
    def running(self) -> bool:
        """True while a run is attached (an encode is in progress)."""
        with self._lock:
            return bool(self._runs)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            for ro in self._runs:
                ro.terminate = True

    def attach(self, run_options: Any) -> None:
        with self._lock:
            if self():
                run_options.terminate = True
            self._runs.append(run_options)

    def detach(self, run_options: Any) -> None:
        with self._lock:
            self._runs = [ro for ro in self._runs if ro is not run_options]


def run_cancellable(session: pv.ManagedSession, outputs: List[str], feed: Dict[str, Any], cancel: Optional[CancelToken],
                    path: str) -> List[Any]:
    """``session.run`` with shrinking run options that ``cancel`` can terminate.

    Raises :class:`EncodeCancelledError` when cancelled, :class:`ModelError` (naming ``path``)
    when onnxruntime fails otherwise.
    """
    # A fresh one per run: a terminated one stays terminated.
    ro = shrinking_run_options(pv.shrink_entry(session.provider, session.device_id))
    if cancel is not None:
        cancel.attach(ro)
    try:
        return session.run(outputs, feed, ro)
    except Exception as exc:  # onnxruntime raises several private exception types
        if cancel is not None and cancel():
            raise EncodeCancelledError("encoding was cancelled") from None
        raise ModelError(f"'{path}' failed while encoding: {first_line(exc)}") from None
    finally:
        if cancel is not None:
            cancel.detach(ro)


def signature(session: Any) -> Tuple[Dict[str, TensorSpec], Dict[str, TensorSpec]]:
    """Inputs and outputs of a session, by name."""
    ins = {i.name: TensorSpec(i.name, len(i.shape)) for i in session.get_inputs()}
    outs = {o.name: TensorSpec(o.name, len(o.shape)) for o in session.get_outputs()}
    return ins, outs
