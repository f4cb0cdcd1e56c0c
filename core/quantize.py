"""Building a dynamically quantised int8 SAM encoder, the fast CPU option.

Qt-free. Uses ``onnxruntime.quantization.quantize_dynamic`` like samexporter's
``--quantize-out`` (per-tensor, no reduced range) but with signed int8 weights
(QInt8 was 3.4 s against QUInt8's 4.7 s for ViT-B on 2 cores) and on MatMul
only: the ViT's linear layers carry nearly all of the work, and leaving the few
convolutions in fp32 kept the embedding cosine to fp32 at 0.99992 instead of
0.99976 at the same speed (random weights; quality on real weights is for the
user to check).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Optional

from .errors import MissingDependencyError, ModelError
from .sam_encoder import SamEncoder

log = logging.getLogger("ai_segmentation")

INT8_SUFFIX = ".int8.onnx"


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: module blocked (None) in sys.modules
        return False


def unavailable_reason() -> Optional[str]:
    """Why int8 encoders cannot be built here, or None when they can (nothing is imported)."""
    absent = [m for m in ("onnxruntime", "onnx") if not _present(m)]
    if not absent:
        return None
    return (
        f"building the int8 encoder needs the Python package(s) {' and '.join(absent)}, which this "
        "QGIS does not have. Install them from the AI Segmentation setup dialog ('Install' with "
        "'onnx' ticked), or with 'pip install onnx'. The fp32 encoder works without them."
    )


def int8_path(encoder: os.PathLike) -> Path:
    """``vit_b.encoder.preproc.onnx`` -> ``vit_b.encoder.preproc.int8.onnx``, same folder."""
    p = Path(encoder)
    stem = p.name[:-5] if p.name.lower().endswith(".onnx") else p.name
    return p.with_name(stem + INT8_SUFFIX)


def build_int8_encoder(encoder: os.PathLike, output: Optional[os.PathLike] = None) -> Path:
    """Quantise a samexporter encoder's weights to int8 and validate the result.

    Args:
        encoder: fp32 encoder ``.onnx`` (with or without ``--use-preprocess``).
        output: destination; defaults to :func:`int8_path` of ``encoder``.

    Returns:
        the path of the int8 encoder, written atomically (a temporary file in the
        same folder, validated with :class:`SamEncoder`, then renamed).

    Raises:
        MissingDependencyError: ``onnx`` or ``onnxruntime`` is missing.
        ModelError: ``encoder`` is not a SAM encoder, or quantisation failed.
    """
    reason = unavailable_reason()
    if reason:
        raise MissingDependencyError(reason)
    src = Path(encoder)
    SamEncoder(src)  # fails with the engine's message on a decoder, garbage or truncated file
    dst = Path(output) if output else int8_path(src)
    if dst.resolve() == src.resolve():
        raise ModelError(f"the int8 encoder would overwrite its source '{src}'; choose another name")
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.tmp.onnx")
    try:
        try:
            from onnxruntime.quantization import QuantType, quantize_dynamic
        except ImportError as exc:  # onnx present but broken (e.g. its protobuf too old)
            raise MissingDependencyError(f"onnxruntime.quantization cannot be imported: {exc}") from None
        log.info("quantising '%s' to int8", src)
        quantize_dynamic(
            model_input=str(src),
            model_output=str(tmp),
            per_channel=False,
            reduce_range=False,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
        )
        SamEncoder(tmp)
        os.replace(tmp, dst)
    except (MissingDependencyError, ModelError):
        raise
    except Exception as exc:  # quantize_dynamic raises many types (onnx, protobuf, numpy)
        raise ModelError(
            f"building the int8 encoder from '{src}' failed: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    log.info("int8 encoder written: '%s' (%.0f MiB)", dst, dst.stat().st_size / 2**20)
    return dst
