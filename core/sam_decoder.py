"""The prompt decoder (the light, per-click stage), whatever the model family, on ONNX Runtime.

The rest of the plugin uses only this class: the family is detected from the graph and
its own prompt encoding and mask upscaling run behind :meth:`SamDecoder.predict`.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from .families import detect
from .families import onnx_session as ox
from .families.base import Family, ImageEmbedding, PointRunner, Prediction, PromptError
from .families.providers import ProviderChoice
from .families.sam import build_prompt

__all__ = ["PointRunner", "Prediction", "PromptError", "SamDecoder", "build_prompt"]


class SamDecoder:
    """Runs the decoder of any known family.

    Args:
        path: the decoder ``.onnx`` file.
        threads: ONNX Runtime intra-op threads; ``None`` lets it choose.
        provider: the execution provider set in Options (default: the CPU); the CPU is the
            fallback when it cannot start or run (see :mod:`.families.providers`).

    Attributes:
        session: its :class:`~.families.providers.ManagedSession`: ``provider`` runs the model,
            ``note`` says why that is not the provider chosen, ``release()`` frees GPU memory.

    Raises:
        ModelError: the file is missing, unreadable, an encoder, or of no known family.
    """

    def __init__(self, path: str, threads: Optional[int] = None,
                 provider: Optional[ProviderChoice] = None) -> None:
        self.path = os.fspath(path)
        self.family: Family = detect.expect(self.path, "decoder")
        self.session = ox.open_session(self.path, "decoder", threads, provider=provider)
        self._impl = self.family.decoder(self.path, self.session, threads)

    def _check_family(self, embedding: ImageEmbedding) -> None:
        if embedding.family != self.family.name:
            raise PromptError(f"this image was encoded by a {detect.title(embedding.family)} encoder, but the "
                              f"decoder '{self.path}' is a {self.family.title} model: choose the encoder and "
                              "decoder of one model")

    def predict(
        self,
        embedding: ImageEmbedding,
        points: Optional[Sequence[Sequence[float]]] = None,
        labels: Optional[Sequence[int]] = None,
        box: Optional[Sequence[float]] = None,
        mask_input: Optional[np.ndarray] = None,
        multimask: bool = True,
        continuous: bool = False,
    ) -> Prediction:
        """Predict masks for prompts in original-image pixels.

        Args:
            embedding: output of :meth:`SamEncoder.encode` with an encoder of this family.
            points: ``[N, 2]`` (x, y) in original-image pixels.
            labels: ``[N]``, 1 include, 0 exclude.
            box: ``(x0, y0, x1, y1)`` in original-image pixels.
            mask_input: ``[1, 256, 256]`` low-res logits of an earlier prediction (EfficientSAM's
                decoder takes none and ignores it).
            multimask: three candidate masks if True, else one.
            continuous: False (default): coordinates exactly as the family's own predictor takes
                them (``SamPredictor``, ``SAM2ImagePredictor``...; each shifts them by half a pixel
                of its 1024 px frame). True: positions on the image plane, pixel ``(i, j)``
                covering ``[i, i+1) x [j, j+1)``, its centre at ``(i + 0.5, j + 0.5)``; the
                family converts them so a prompt lands exactly there at any frame size.
        Returns:
            masks ``[K, H, W]`` bool, scores ``[K]``, low-res logits ``[K, 256, 256]``.
        """
        self._check_family(embedding)
        return self._impl.predict(embedding, points, labels, box, mask_input, multimask, continuous)

    def point_runner(self, embedding: ImageEmbedding) -> PointRunner:
        """Single include points on one image, for "segment everything" (see :class:`PointRunner`)."""
        self._check_family(embedding)
        return self._impl.point_runner(embedding)

    def blank_embedding(self) -> ImageEmbedding:
        """A zero bundle of a 1024 x 1024 image for this family (to warm the decoder up)."""
        return self._impl.blank_bundle()
