"""The image encoder (the heavy stage), whatever the model family, on ONNX Runtime.

The rest of the plugin uses only this class and :class:`ImageEmbedding`: the family
(SAM / MobileSAM, SAM 2.1, EfficientSAM) is detected from the graph and its own
pre-processing runs behind :meth:`SamEncoder.encode`.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .families import detect
from .families import onnx_session as ox
from .families.base import EMBEDDING_SHAPE, Family, ImageEmbedding, ImageError, check_image
from .families.providers import ProviderChoice

__all__ = ["EMBEDDING_SHAPE", "ImageEmbedding", "ImageError", "SamEncoder", "check_image"]


class SamEncoder:
    """Runs the encoder of any known family.

    Args:
        path: the encoder ``.onnx`` file.
        threads: ONNX Runtime intra-op threads; ``None`` lets it choose.
        provider: the execution provider set in Options (default: the CPU); the CPU is the
            fallback when it cannot start or run (see :mod:`.families.providers`).

    Attributes:
        session: its :class:`~.families.providers.ManagedSession`: ``provider`` runs the model,
            ``note`` says why that is not the provider chosen, ``release()`` frees GPU memory.

    Raises:
        ModelError: the file is missing, unreadable, a decoder, or of no known family (the
            message names it). Checked from the graph's header before the session opens.
    """

    def __init__(self, path: str, threads: Optional[int] = None,
                 provider: Optional[ProviderChoice] = None) -> None:
        self.path = os.fspath(path)
        self.family: Family = detect.expect(self.path, "encoder")
        self.session = ox.open_session(self.path, "encoder", threads, low_memory=True, provider=provider)
        self._impl = self.family.encoder(self.path, self.session)

    @property
    def preprocess_in_graph(self) -> bool:
        """True when the graph normalises the image itself (SAM's ``--use-preprocess``)."""
        return self._impl.preprocess_in_graph

    def encode(self, image: np.ndarray, cancel: Optional[ox.CancelToken] = None) -> ImageEmbedding:
        """Encode an HxWx3 uint8 RGB image of any size, as the family's own predictor does.

        Args:
            image: ``[H, W, 3]`` uint8 RGB.
            cancel: cancelling it from another thread stops the run within about a second;
                :class:`onnx_session.EncodeCancelledError` is raised then.
        Returns:
            the family's bundle (see :class:`ImageEmbedding`), float32.
        """
        return self._impl.encode(image, cancel)
