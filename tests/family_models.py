"""Where each family's tiny random-weight test models are (tests/fixtures/<family>/, see its README)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

FIXTURES = Path(__file__).parent / "fixtures"

FAMILY_FILES: Dict[str, Dict[str, List[Path]]] = {
    "sam": {"encoder": [FIXTURES / "tiny.encoder.preproc.onnx", FIXTURES / "tiny.encoder.onnx"],
            "decoder": [FIXTURES / "tiny.decoder.onnx"]},
}


def family_params() -> List[str]:
    """Families whose fixtures are present."""
    return [f for f, files in FAMILY_FILES.items() if all(p[0].exists() for p in files.values())]
