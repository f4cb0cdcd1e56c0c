"""The decoder run for "segment everything": one include point per run, low-res logits only.

:meth:`SamDecoder.predict` upscales every candidate to the image size; the automatic
generator upscales only the candidates that pass its predicted-IoU filter, and only where
they can be positive (see :mod:`core.segment.automatic`). One prompt per run: samexporter declares a
batch of 1, and a graph edited to take a batch of 64 points was slower per point on CPU
(58 vs 45 ms, ViT-B, 2 cores). Each family supplies its own fast path
(:meth:`SamDecoder.point_runner`)."""

from __future__ import annotations

from ..core.sam_decoder import SamDecoder


class PointDecoder(SamDecoder):
    """A :class:`SamDecoder` (same file checks, any family) whose ``point_runner(embedding)``
    feeds :func:`core.segment.automatic.crop_masks`."""
