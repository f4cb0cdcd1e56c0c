"""Finding the SAM encoder and decoder files in the models folder. Pure Python."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import List, Optional


@dataclass(frozen=True)
class ModelFiles:
    """The model files found in ``folder`` (None where missing)."""

    folder: str
    encoder: Optional[str]
    decoder: Optional[str]

    @property
    def complete(self) -> bool:
        return self.encoder is not None and self.decoder is not None

    def describe(self) -> str:
        """One line for the dock: what was found, or what is missing and where."""
        if self.complete:
            return f"{os.path.basename(self.encoder)} + {os.path.basename(self.decoder)}"
        missing = [role for role, path in (("encoder", self.encoder), ("decoder", self.decoder)) if not path]
        return f"no SAM {' or '.join(missing)} .onnx file in {self.folder}"


def _rank_encoder(path: str) -> tuple:
    """Quantised encoders first (about 1.7x faster on CPU), then ViT-B, then by name."""
    name = os.path.basename(path).lower()
    quantised = any(tag in name for tag in ("quant", "int8", "uint8", "qint"))
    return (not quantised, "vit_b" not in name, name)


def _candidates(folder: str, role: str) -> List[str]:
    pattern = os.path.join(glob.escape(folder), f"*{role}*.onnx")
    return [p for p in glob.glob(pattern) if os.path.isfile(p) and os.path.getsize(p) > 0]


def find_models(folder: str, encoder: str = "", decoder: str = "") -> ModelFiles:
    """The chosen files (``encoder``, ``decoder``) where they exist, else the best in ``folder``:
    ``*encoder*.onnx`` (quantised first) and ``*decoder*.onnx``."""
    encoders = sorted(_candidates(folder, "encoder"), key=_rank_encoder)
    decoders = sorted(_candidates(folder, "decoder"), key=lambda p: os.path.basename(p).lower())
    if encoder and os.path.isfile(encoder):
        encoders.insert(0, encoder)
    if decoder and os.path.isfile(decoder):
        decoders.insert(0, decoder)
    return ModelFiles(folder, encoders[0] if encoders else None, decoders[0] if decoders else None)
