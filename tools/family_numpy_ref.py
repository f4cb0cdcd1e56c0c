"""Plain-numpy pre/post-processing for SAM 2.1 and EfficientSAM ONNX files.

The fixture generator runs the exported ONNX files through these functions and asserts
they reproduce the torch reference predictors (tests/fixtures/<family>/README.md states
the rules). Each resize is a pair of (out, in) weight matrices, one per axis, that
reproduce torch.nn.functional.interpolate with align_corners=False:

- aa_bilinear_weights: mode="bilinear", antialias=True (torchvision's Resize on tensors):
  a triangle filter stretched by the scale when shrinking, weights renormalised per row.
- bilinear_weights: mode="bilinear", antialias=False.
- bicubic_weights: mode="bicubic" (Keys cubic, A = -0.75, edge indices clamped).
"""

from __future__ import annotations

import numpy as np

SAM2_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
SAM2_STD = np.array([0.229, 0.224, 0.225], np.float32)


def aa_bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of torch's antialiased bilinear resize along one axis."""
    scale = n_in / n_out
    support = scale if scale >= 1.0 else 1.0
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    w = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        j = np.arange(lo, hi)
        row = np.clip(1.0 - np.abs((j - center + 0.5) * inv), 0.0, None)
        if row.sum() > 0:
            w[i, lo:hi] = row / row.sum()
    return w


def bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of torch's bilinear resize, align_corners=False, no antialias."""
    scale = np.float32(n_in / n_out)  # torch computes source indices in float32
    src = np.maximum((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
    src = src.astype(np.float64)
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = np.clip(src - i0, 0.0, 1.0)
    w = np.zeros((n_out, n_in), np.float64)
    np.add.at(w, (np.arange(n_out), i0), 1.0 - lam)
    np.add.at(w, (np.arange(n_out), i1), lam)
    return w


def bicubic_weights(n_in: int, n_out: int, a: float = -0.75) -> np.ndarray:
    """(n_out, n_in) weights of torch's bicubic resize, align_corners=False."""
    scale = np.float32(n_in / n_out)
    src = ((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)).astype(np.float64)
    i0 = np.floor(src).astype(np.int64)
    t = src - i0
    x = np.stack([t + 1, t, 1 - t, 2 - t], 1)  # distances to i0-1, i0, i0+1, i0+2
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    k = np.where(x <= 1, near, far)
    w = np.zeros((n_out, n_in), np.float64)
    for tap in range(4):
        idx = np.clip(i0 - 1 + tap, 0, n_in - 1)
        np.add.at(w, (np.arange(n_out), idx), k[:, tap])
    return w


def resize_chw(x: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """Apply per-axis weights to [..., H, W] (float32 result)."""
    return ((wy @ x.astype(np.float64)) @ wx.T).astype(np.float32)


def sam2_image(img: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> [1,3,1024,1024] float32: /255, antialiased bilinear to 1024x1024
    (aspect not kept; skipped when already 1024x1024), ImageNet mean/std."""
    h, w = img.shape[:2]
    x = img.transpose(2, 0, 1).astype(np.float32) / 255.0
    if (h, w) != (1024, 1024):
        x = resize_chw(x, aa_bilinear_weights(h, 1024), aa_bilinear_weights(w, 1024))
    return ((x - SAM2_MEAN[:, None, None]) / SAM2_STD[:, None, None])[None].astype(np.float32)


def sam2_prompt(h: int, w: int, points=None, labels=None, box=None) -> tuple[np.ndarray, np.ndarray]:
    """point_coords [1,N,2] and point_labels [1,N] float32 in the 1024 frame: box corners
    first (labels 2, 3), then points; x * 1024 / W, y * 1024 / H; no +0.5, no padding point."""
    coords, labs = [], []
    if box is not None:
        coords += [[box[0], box[1]], [box[2], box[3]]]
        labs += [2, 3]
    if points is not None:
        coords += [list(p) for p in points]
        labs += list(labels)
    c = np.array(coords, np.float64) * np.array([1024.0 / w, 1024.0 / h])
    return c[None].astype(np.float32), np.array(labs, np.float32)[None]


def upscale_masks(low: np.ndarray, h: int, w: int, kind: str = "bilinear") -> np.ndarray:
    """[K,256,256] logits -> [K,h,w] logits in one step (no crop)."""
    fn = bilinear_weights if kind == "bilinear" else bicubic_weights
    return resize_chw(low, fn(low.shape[-2], h), fn(low.shape[-1], w))


def efficientsam_image(img: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> [1,3,H,W] float32 in 0..1 (resize and normalisation are in the graph)."""
    return (img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0).astype(np.float32)


def efficientsam_prompt(points=None, labels=None, box=None) -> tuple[np.ndarray, np.ndarray]:
    """batched_point_coords [1,1,N,2] (original pixels) and batched_point_labels [1,1,N]
    float32: box corners first (labels 2, 3), then points (1 include, 0 exclude)."""
    coords, labs = [], []
    if box is not None:
        coords += [[box[0], box[1]], [box[2], box[3]]]
        labs += [2, 3]
    if points is not None:
        coords += [list(p) for p in points]
        labs += list(labels)
    return np.array(coords, np.float32)[None, None], np.array(labs, np.float32)[None, None]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
