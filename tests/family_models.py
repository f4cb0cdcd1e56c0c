"""Where each family's tiny random-weight test models are (tests/fixtures/<family>/, see its README)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

FIXTURES = Path(__file__).parent / "fixtures"

FAMILY_FILES: Dict[str, dict] = {
    "sam": {"encoder": [FIXTURES / "tiny.encoder.preproc.onnx", FIXTURES / "tiny.encoder.onnx"],
            "decoder": [FIXTURES / "tiny.decoder.onnx"], "golden": FIXTURES / "golden.npz"},
    "sam2": {"encoder": [FIXTURES / "sam2" / "tiny.encoder.onnx"], "decoder": [FIXTURES / "sam2" / "tiny.decoder.onnx"],
             "golden": FIXTURES / "sam2" / "golden.npz"},
    "efficientsam": {"encoder": [FIXTURES / "efficientsam" / "tiny.encoder.onnx"],
                     "decoder": [FIXTURES / "efficientsam" / "tiny.decoder.onnx"],
                     "golden": FIXTURES / "efficientsam" / "golden.npz"},
}


def family_params() -> List[str]:
    """Families whose fixtures are present."""
    return [f for f, files in FAMILY_FILES.items() if files["encoder"][0].exists() and files["decoder"][0].exists()]
