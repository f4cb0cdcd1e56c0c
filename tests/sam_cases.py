"""Images and prompts shared by the fixture generator and the parity tests.

Pure numpy and deterministic (no RNG), so the torch side that wrote the golden
outputs and the ONNX side under test see the same pixels.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

SIZES: List[Tuple[int, int]] = [(1024, 1024), (600, 800), (800, 600), (300, 200), (1500, 2250)]


def make_image(h: int, w: int) -> np.ndarray:
    """HxWx3 uint8 RGB: gradients, a red disc, a green rectangle and a fine texture."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack(
        [xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full((h, w), 128)], -1
    ).astype(np.int64)
    disc = (xx - w / 2) ** 2 + (yy - h / 2) ** 2 <= (min(h, w) / 4) ** 2
    img[disc] = (250, 30, 30)
    rect = (xx >= w // 8) & (xx <= w // 3) & (yy >= h // 8) & (yy <= h // 3)
    img[rect] = (20, 220, 40)
    img += ((xx * 7 + yy * 13) % 21 - 10)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def prompts(h: int, w: int) -> Dict[str, dict]:
    """Prompt sets in original-image pixels, named as in the golden file."""
    centre = [w * 0.5, h * 0.5]
    box = [w * 0.25, h * 0.25, w * 0.75, h * 0.75]
    return {
        "point": dict(points=[centre], labels=[1]),
        "three_points": dict(points=[centre, [w * 0.3, h * 0.35], [w * 0.7, h * 0.6]], labels=[1, 1, 0]),
        "box": dict(box=box),
        "box_point": dict(points=[centre], labels=[1], box=box),
    }


REFINE_POINTS = ([0.5, 0.5], [0.55, 0.45])  # first click, then a second one with mask_input


def refine_prompt(h: int, w: int) -> dict:
    """Two include points; the decoder also gets the first click's best low-res logits."""
    return dict(points=[[w * x, h * y] for x, y in REFINE_POINTS], labels=[1, 1])


# Sizes for the SAM 2.1 and EfficientSAM fixtures (tests/fixtures/<family>/golden.npz): square
# 1024 (no resize), a small image (long side 400 < 1024), landscape and portrait, one side > 1024.
FAMILY_SIZES: List[Tuple[int, int]] = [(1024, 1024), (300, 400), (600, 900), (768, 1024), (1200, 800)]
