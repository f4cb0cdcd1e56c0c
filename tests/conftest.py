"""Shared fixtures: the tiny random-weight SAM models (same ONNX signature as ViT-B)."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_paths() -> dict:
    """Paths of the committed tiny models (see tools/make_fixtures.py)."""
    return {
        "encoder_preproc": FIXTURES / "tiny.encoder.preproc.onnx",
        "encoder": FIXTURES / "tiny.encoder.onnx",
        "decoder": FIXTURES / "tiny.decoder.onnx",
    }


@pytest.fixture(scope="session")
def golden() -> dict:
    """SamPredictor outputs on the tiny model's weights, keyed 'HxW/case/multimask/field'."""
    with np.load(FIXTURES / "golden.npz") as g:
        return {k: g[k] for k in g.files}


@pytest.fixture(scope="session")
def encoder(tiny_paths):
    from core.sam_encoder import SamEncoder

    return SamEncoder(tiny_paths["encoder_preproc"])


@pytest.fixture(scope="session")
def decoder(tiny_paths):
    from core.sam_decoder import SamDecoder

    return SamDecoder(tiny_paths["decoder"])


@pytest.fixture(scope="session", autouse=True)
def _collect_garbage_before_qgis_exits(qgis_app):
    """Collect leftover Qt/GDAL objects while QGIS still runs: pytest 9 collects garbage once more
    after pytest-qgis has exited QGIS, which crashed QGIS 3.44 on Python 3.14 (segfault, exit 139)."""
    yield
    gc.collect()
