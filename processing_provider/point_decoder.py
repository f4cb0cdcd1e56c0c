"""The SAM decoder run for "segment everything": one include point per run, low-res logits only.

:meth:`SamDecoder.predict` upscales every candidate to the image size; the automatic
generator upscales only the candidates that pass its predicted-IoU filter, and only where
they can be positive (see :mod:`core.automatic`). One prompt per run: samexporter declares a
batch of 1, and a graph edited to take a batch of 64 points was slower per point on CPU
(58 vs 45 ms, ViT-B, 2 cores)."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from ..core.automatic import DecodeFn
from ..core.sam_decoder import SamDecoder, build_prompt
from ..core.sam_encoder import ImageEmbedding
from ..core.transforms import LOW_RES, apply_coords

_OUTPUTS = ["iou_predictions", "low_res_masks"]  # asking for these only skips the graph's own upscale


class PointDecoder(SamDecoder):
    """A :class:`SamDecoder` (same file checks) with a fast path for single include points."""

    def point_runner(self, embedding: ImageEmbedding) -> DecodeFn:
        """``decode(point)`` for one crop: ``(x, y)`` in the crop's pixels (SAM convention,
        pixel ``i``'s centre is ``i``) -> ``(scores [3], low-res logits [3, 256, 256])``."""
        feed = {
            "image_embeddings": embedding.embeddings,
            "mask_input": np.zeros((1, 1, LOW_RES, LOW_RES), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.array([LOW_RES, LOW_RES], np.float32),
        }

        def decode(point: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
            coords, labels = build_prompt([point], [1], None)
            feed["point_coords"] = apply_coords(coords, embedding.original_size)[None].astype(np.float32)
            feed["point_labels"] = labels[None].astype(np.float32)
            scores, low_res = self._session.run(_OUTPUTS, feed)
            multi = slice(1, None) if low_res.shape[1] > 1 else slice(0, 1)  # 0 is the single-mask output
            return scores[0, multi], low_res[0, multi]

        return decode
