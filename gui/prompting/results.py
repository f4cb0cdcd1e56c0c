"""A decoded result as the session keeps it, and how prompts and refinement sizes reach the engine."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ...core.segment.segmenter import MapPrompt, Segmentation
from .prompts import PromptSet


@dataclass
class Result:
    """A segmentation and the candidate mask the user picked (SAM's best by default)."""

    seg: Segmentation
    index: int

    @property
    def mask(self) -> np.ndarray:
        """``[H, W]`` bool: the picked mask."""
        return self.seg.masks[self.index]

    def chosen_only(self) -> Segmentation:
        """The segmentation reduced to the picked mask: what the next prompt refines."""
        i = slice(self.index, self.index + 1)
        return replace(self.seg, masks=self.seg.masks[i], scores=self.seg.scores[i],
                       low_res_logits=self.seg.low_res_logits[i])


def to_map_prompt(prompts: PromptSet) -> MapPrompt:
    return MapPrompt(points=prompts.points, labels=prompts.labels, box=prompts.box)

