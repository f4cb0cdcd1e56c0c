"""Building a dynamically quantised int8 encoder (any model family), the fast CPU option.

Qt-free. Uses ``onnxruntime.quantization.quantize_dynamic`` like samexporter's
``--quantize-out`` (per-tensor, no reduced range) but with signed int8 weights
(QInt8 was 3.4 s against QUInt8's 4.7 s for ViT-B on 2 cores) and on MatMul
only: the ViT's linear layers carry nearly all of the work, and leaving the few
convolutions in fp32 kept the embedding cosine to fp32 at 0.99992 instead of
0.99976 at the same speed (random weights). The result reports the cosine
between the int8 and fp32 encoders' outputs on a fixed test image, so the user
sees what was lost.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .. import fs_checks as fs
from ..errors import MissingDependencyError, ModelError
from ..sam_encoder import ImageEmbedding, SamEncoder
from . import detect

log = logging.getLogger("ai_segmentation")

INT8_SUFFIX = ".int8.onnx"
WHAT = "int8 encoder file"  # in messages


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


@dataclass(frozen=True)
class Int8Build:
    """A built int8 encoder.

    Attributes:
        path: where it was written.
        cosine: the lowest, over the bundle's tensors, cosine similarity between the int8
            and the fp32 encoder's outputs on :func:`reference_image` (1.0 = identical).
        cosines: that cosine per tensor (``image_embeddings``, and SAM 2.1's high-res features).
    """

    path: Path
    cosine: float
    cosines: Dict[str, float]


def reference_image(size: int = 1024) -> np.ndarray:
    """A fixed ``size x size`` RGB uint8 image with gradients, shapes and fine texture (pure arithmetic)."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([xx * 255 // (size - 1), yy * 255 // (size - 1), (xx + yy) * 255 // (2 * size - 2)], -1)
    img = img.astype(np.int64)
    img[(xx - size / 2) ** 2 + (yy - size / 2) ** 2 <= (size / 4) ** 2] = (250, 30, 30)
    img[(xx > size // 8) & (xx < size // 3) & (yy > size // 8) & (yy < size // 3)] = (20, 220, 40)
    img += ((xx * 7 + yy * 13) % 41 - 20)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _cosines(ref: ImageEmbedding, got: ImageEmbedding) -> Dict[str, float]:
    out = {}
    for name, a in ref.tensors.items():
        a64, b64 = a.astype(np.float64).ravel(), got.tensors[name].astype(np.float64).ravel()
        norm = np.linalg.norm(a64) * np.linalg.norm(b64)
        out[name] = float(a64 @ b64 / norm) if norm > 0 else float(np.array_equal(a64, b64))
    return out


def build_int8_encoder(encoder: os.PathLike, output: Optional[os.PathLike] = None) -> Int8Build:
    """Quantise an encoder's weights to int8, validate the result and measure it against fp32.

    Args:
        encoder: fp32 encoder ``.onnx`` of any known family (SAM with or without
            ``--use-preprocess``, SAM 2.1, EfficientSAM).
        output: destination; defaults to :func:`int8_path` of ``encoder``.

    Returns:
        the int8 encoder, written atomically (a temporary file in the same folder,
        validated with :class:`SamEncoder`, then renamed), and its cosine to fp32.
        Costs one fp32 and one int8 encode on top of the quantisation.

    Raises:
        MissingDependencyError: ``onnx`` or ``onnxruntime`` is missing.
        ModelError: ``encoder`` is not a SAM encoder, the int8 file cannot be written (read-only
            folder, full disk: checked before the work), or quantisation failed.
    """
    reason = unavailable_reason()
    if reason:
        raise MissingDependencyError(reason)
    src = Path(encoder)
    detect.expect(src, "encoder")  # the engine's message on a decoder, garbage or truncated file
    dst = Path(output) if output else int8_path(src)
    if dst.resolve() == src.resolve():
        raise ModelError(f"the int8 encoder would overwrite its source '{src}'; choose another name")
    # Before the work: the int8 weights alone take a quarter of the fp32 ones.
    fs.check_output_file(str(dst), WHAT, error=ModelError, min_free=max(fs.MIN_FREE_BYTES, src.stat().st_size // 4))
    if src.parent.resolve() != dst.parent.resolve():  # onnxruntime writes a shape-inferred copy beside the source
        fs.check_folder(str(src.parent), "folder of the fp32 encoder", error=ModelError,
                        remedy="onnxruntime's quantisation writes a temporary copy beside the encoder: copy the "
                               "encoder to a folder you can write to")
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
            # 7-bit weights: on x86 CPUs without VNNI (AVX2 only) 8-bit ones saturate in the int8
            # kernels (embedding cosine 0.96 instead of 0.999 on a random ViT); VNNI CPUs lose nothing.
            reduce_range=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
        )
        image = reference_image()
        cosines = _cosines(SamEncoder(src).encode(image), SamEncoder(tmp).encode(image))
        os.replace(tmp, dst)
    except (MissingDependencyError, ModelError):
        raise
    except OSError as exc:  # full disk, folder made read-only meanwhile
        raise fs.os_error(exc, "write", WHAT, str(dst), error=ModelError) from None
    except Exception as exc:  # quantize_dynamic raises many types (onnx, protobuf, numpy)
        raise ModelError(
            f"building the int8 encoder from '{src}' failed: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    cosine = min(cosines.values())
    log.info("int8 encoder written: '%s' (%.0f MiB), cosine to fp32 %.5f", dst, dst.stat().st_size / 2**20, cosine)
    return Int8Build(dst, cosine, cosines)
