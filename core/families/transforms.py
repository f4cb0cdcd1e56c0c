"""Pure image and coordinate transforms of SAM's 1024 input frame.

Mirrors ``segment_anything.utils.transforms.ResizeLongestSide`` and
``Sam.postprocess_masks`` in numpy only, so the plugin needs neither torch nor
PIL. Coordinates are ``(x, y)`` in pixels; shapes are ``(h, w)``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import numpy as np

IMG_SIZE = 1024  # side of SAM's square input frame, in pixels
LOW_RES = 256  # side of the decoder's low-resolution logits
PIXEL_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], np.float32)

Shape = Tuple[int, int]


def resized_shape(h: int, w: int, long_side: int = IMG_SIZE) -> Shape:
    """Shape ``(h, w)`` after scaling the longest side to ``long_side`` (Meta's rounding)."""
    scale = long_side * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def apply_coords(coords: np.ndarray, original: Shape, long_side: int = IMG_SIZE) -> np.ndarray:
    """Map ``[..., 2]`` pixel coordinates of the original image into the resized frame."""
    old_h, old_w = original
    new_h, new_w = resized_shape(old_h, old_w, long_side)
    out = np.array(coords, dtype=np.float64, copy=True)
    out[..., 0] *= new_w / old_w
    out[..., 1] *= new_h / old_h
    return out


def normalize_and_pad(image: np.ndarray) -> np.ndarray:
    """HxWx3 RGB (0-255, already resized) -> ``[1, 3, 1024, 1024]`` float32, padded bottom/right."""
    h, w = image.shape[:2]
    x = (image.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD
    out = np.zeros((1, 3, IMG_SIZE, IMG_SIZE), np.float32)
    out[0, :, :h, :w] = x.transpose(2, 0, 1)
    return out


# --- image resize, bit-exact with PIL's Image.resize(BILINEAR) on 8-bit images ---

_PRECISION_BITS = 32 - 8 - 2  # PIL's fixed-point precision for 8-bit resampling


@lru_cache(maxsize=16)
def _aa_bilinear_weights(in_size: int, out_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per output pixel: source indices ``[out, k]`` and normalised float weights ``[out, k]``.

    PIL's bilinear filter (antialiased when shrinking), which torch's
    ``interpolate(mode="bilinear", antialias=True, align_corners=False)`` also uses.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)  # antialias when shrinking
    support = 1.0 * filterscale
    ksize = int(np.ceil(support)) * 2 + 1
    idx = np.zeros((out_size, ksize), np.int64)
    wts = np.zeros((out_size, ksize), np.float64)
    ss = 1.0 / filterscale
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [max(1.0 - abs((x + xmin - center + 0.5) * ss), 0.0) for x in range(xmax)]
        total = 0.0
        for v in k:  # sequential sum, as PIL does, so rounding matches bit for bit
            total += v
        for x, v in enumerate(k):
            wts[xx, x] = v / total if total != 0.0 else v
            idx[xx, x] = x + xmin
        idx[xx, xmax:] = xmin  # zero weight, any valid index
    return idx, wts


@lru_cache(maxsize=16)
def _pil_bilinear_coeffs(in_size: int, out_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`_aa_bilinear_weights` in PIL's fixed point for 8-bit images."""
    idx, wts = _aa_bilinear_weights(in_size, out_size)
    return idx, np.floor(0.5 + wts * (1 << _PRECISION_BITS)).astype(np.int64)


def _resample_axis(image: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    idx, wts = _pil_bilinear_coeffs(image.shape[axis], out_size)
    src = np.moveaxis(image, axis, 0)  # [in, other, 3]
    acc = np.full((out_size, *src.shape[1:]), 1 << (_PRECISION_BITS - 1), np.int64)
    for j in range(idx.shape[1]):
        acc += src[idx[:, j]].astype(np.int64) * wts[:, j].reshape(-1, 1, 1)
    out = np.clip(acc >> _PRECISION_BITS, 0, 255).astype(np.uint8)
    return np.moveaxis(out, 0, axis)


def resize_uint8(image: np.ndarray, shape: Shape) -> np.ndarray:
    """Resize an HxWx3 uint8 image to ``shape`` exactly as PIL's bilinear resize does.

    PIL resamples horizontally then vertically, rounding to 8 bits in between;
    this is what SamPredictor feeds its encoder.
    """
    h, w = shape
    out = image
    if out.shape[1] != w:
        out = _resample_axis(out, w, axis=1)
    if out.shape[0] != h:
        out = _resample_axis(out, h, axis=0)
    return out


def resize_longest_side(image: np.ndarray, long_side: int = IMG_SIZE) -> np.ndarray:
    """HxWx3 uint8 -> resized so the longest side is ``long_side`` (``ResizeLongestSide.apply_image``)."""
    return resize_uint8(image, resized_shape(image.shape[0], image.shape[1], long_side))


def resize_float(image: np.ndarray, shape: Shape) -> np.ndarray:
    """Resize an HxWxC float32 image to ``shape`` with the antialiased bilinear filter, in float.

    Equal to torch's ``interpolate(mode="bilinear", antialias=True, align_corners=False)``
    (what torchvision's ``Resize`` does to a tensor); without antialiasing when enlarging,
    which is then plain bilinear.
    """
    out = np.asarray(image, np.float32)
    for axis, size in ((1, shape[1]), (0, shape[0])):
        if out.shape[axis] == size:
            continue
        idx, wts = _aa_bilinear_weights(out.shape[axis], size)
        src = np.moveaxis(out, axis, 0)
        acc = np.zeros((size, *src.shape[1:]), np.float32)
        w32 = wts.astype(np.float32)
        for j in range(idx.shape[1]):
            acc += src[idx[:, j]] * w32[:, j].reshape(-1, *([1] * (src.ndim - 1)))
        out = np.moveaxis(acc, 0, axis)
    return np.ascontiguousarray(out)


# --- mask upscaling, equal to Sam.postprocess_masks (torch bilinear, align_corners=False) ---


@lru_cache(maxsize=32)
def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``[out, in]`` float32 matrix of torch's bilinear interpolation, align_corners=False."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0
    m = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), 1.0 - frac)
    np.add.at(m, (rows, i1), frac)
    return m


@lru_cache(maxsize=32)
def bicubic_matrix(in_size: int, out_size: int, a: float = -0.75) -> np.ndarray:
    """``[out, in]`` matrix of torch's bicubic interpolation (Keys, ``a = -0.75``), align_corners=False,
    source indices clamped at the edges as torch does."""
    src = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    i0 = np.floor(src).astype(np.int64)
    t = src - i0
    d = np.stack([t + 1, t, 1 - t, 2 - t], axis=1)  # distances to taps i0-1 .. i0+2
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    w = np.where(d <= 1, near, far)
    m = np.zeros((out_size, in_size), np.float64)
    rows = np.repeat(np.arange(out_size), 4)
    np.add.at(m, (rows, np.clip(i0[:, None] + np.arange(-1, 3), 0, in_size - 1).ravel()), w.ravel())
    return m


class BandedUpscale:
    """``rows @ logits @ cols.T`` for banded resize matrices, block by block.

    Each block of ``block`` output rows (columns) reads only the few input rows (columns) its
    taps reach, so a 256 -> 1024 bicubic step costs about a tenth of the dense products
    (12 ms against 17 ms for onnxruntime's MatMul, 3 masks, 2 cores).

    Args:
        rows: ``[H, n]`` float32, ``cols``: ``[W, m]`` float32.
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, block: int = 64) -> None:
        self.shape = rows.shape[0], cols.shape[0]
        self._rows, self._cols = self._blocks(rows, block), self._blocks(cols, block)

    @staticmethod
    def _blocks(m: np.ndarray, block: int) -> list:
        out = []
        for o in range(0, m.shape[0], block):
            nz = np.flatnonzero(m[o : o + block].any(axis=0))
            a, b = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 1)
            out.append((o, min(o + block, m.shape[0]), a, b, np.ascontiguousarray(m[o : o + block, a:b], np.float32)))
        return out

    def __call__(self, low: np.ndarray) -> np.ndarray:
        """``[K, n, m]`` float32 -> ``[K, H, W]`` float32."""
        h, w = self.shape
        tall = np.empty((low.shape[0], low.shape[1], w), np.float32)
        for o0, o1, a, b, m in self._cols:
            tall[:, :, o0:o1] = low[:, :, a:b] @ m.T
        out = np.empty((low.shape[0], h, w), np.float32)
        for o0, o1, a, b, m in self._rows:
            out[:, o0:o1, :] = np.matmul(m, tall[:, a:b, :])
        return out


@lru_cache(maxsize=16)
def postprocess_matrices(input_size: Shape, original: Shape) -> Tuple[np.ndarray, np.ndarray]:
    """Row and column matrices taking 256x256 logits to the original size: ``rows @ logits @ cols.T``."""
    mats = []
    for axis in (0, 1):
        up = bilinear_matrix(LOW_RES, IMG_SIZE)[: input_size[axis]]  # upscale, crop padding
        down = bilinear_matrix(input_size[axis], original[axis])
        mats.append((down @ up).astype(np.float32))
    return mats[0], mats[1]

