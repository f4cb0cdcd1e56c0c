"""Bad model files raise ModelError with a message naming the file, the expectation and the finding."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from core.errors import ModelError
from core.sam_decoder import PromptError, SamDecoder
from core.sam_encoder import ImageError, SamEncoder


@pytest.mark.parametrize("cls", [SamEncoder, SamDecoder])
def test_missing_file(cls, tmp_path):
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match=r"not found: '.*nope\.onnx' does not exist"):
        cls(path)


@pytest.mark.parametrize("cls", [SamEncoder, SamDecoder])
def test_garbage_file(cls, tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"this is a text file, not a protobuf" * 10)
    with pytest.raises(ModelError) as err:
        cls(path)
    msg = str(err.value)
    assert "garbage.onnx" in msg and "could not be loaded" in msg and "Traceback" not in msg


@pytest.mark.parametrize("cls,key", [(SamEncoder, "encoder_preproc"), (SamDecoder, "decoder")])
def test_truncated_file(cls, key, tiny_paths, tmp_path):
    path = tmp_path / "truncated.onnx"
    data = tiny_paths[key].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"truncated\.onnx.*(not a valid ONNX file, or it is truncated)"):
        cls(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelError, match="holds only 0 bytes"):
        SamEncoder(path)


def test_decoder_given_as_encoder(tiny_paths, tmp_path):
    path = tmp_path / "swapped.onnx"
    shutil.copy(tiny_paths["decoder"], path)
    with pytest.raises(ModelError) as err:
        SamEncoder(path)
    msg = str(err.value)
    assert "swapped.onnx" in msg and "is a SAM / MobileSAM decoder, not an encoder" in msg
    assert "choose the encoder file" in msg


def test_encoder_given_as_decoder(tiny_paths):
    with pytest.raises(ModelError) as err:
        SamDecoder(tiny_paths["encoder"])
    msg = str(err.value)
    assert "tiny.encoder.onnx' is a SAM / MobileSAM encoder, not a decoder" in msg
    assert "choose the decoder file" in msg


def test_both_encoder_variants_detected(tiny_paths):
    assert SamEncoder(tiny_paths["encoder_preproc"]).preprocess_in_graph is True
    assert SamEncoder(tiny_paths["encoder"]).preprocess_in_graph is False


@pytest.mark.parametrize(
    "image,match",
    [
        (np.zeros((10, 10), np.uint8), r"HxWx3 RGB image, got shape \(10, 10\)"),
        (np.zeros((10, 10, 4), np.uint8), r"got shape \(10, 10, 4\)"),
        (np.zeros((10, 10, 3), np.float32), "uint8 pixel values 0-255, got float32"),
        ([[1, 2, 3]], "expected a numpy image, got list"),
    ],
)
def test_bad_images(encoder, image, match):
    with pytest.raises(ImageError, match=match):
        encoder.encode(image)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({}, "no prompt"),
        ({"points": [[1, 2]]}, "without labels"),
        ({"points": [[1, 2], [3, 4]], "labels": [1]}, "2 points but 1 labels"),
        ({"points": [[1, 2]], "labels": [2]}, "must be 1 \\(include\\) or 0 \\(exclude\\)"),
        ({"box": [1, 2, 3]}, "got 3 values"),
        ({"points": [[np.nan, 2]], "labels": [1]}, "finite"),
        ({"points": [[1, 2]], "labels": [1], "mask_input": np.zeros((64, 64))}, "mask_input must be"),
    ],
)
def test_bad_prompts(encoder, decoder, kwargs, match):
    emb = encoder.encode(np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(PromptError, match=match):
        decoder.predict(emb, **kwargs)
