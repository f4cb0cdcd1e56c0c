"""Write tests/fixtures/colour.encoder.onnx: a synthetic SAM encoder whose embeddings encode local colour.

Same signature as samexporter's ``--use-preprocess`` encoder (``input_image`` ``[H, W, 3]``
float 0-255, the longest side already 1024 -> ``image_embeddings`` ``[1, 256, 64, 64]``), so
the plugin runs it as any SAM encoder and the tiny decoder pairs with it. Each 16 x 16 pixel
cell gets 11 numbers, projected to 256 channels by a fixed random matrix:

- the mean of the normalised RGB (SAM's pixel mean and std) over the cell (3),
- its standard deviation per channel (3: texture),
- the mean colour of the 3 x 3 cells around it (3: context),
- the mean absolute horizontal and vertical luminance step, times 6 (2: stripe direction).

Objects with the same colour pattern get the same vectors wherever they are; a plain patch
of the same colours, or the pattern turned by 90 degrees, does not. A test fixture, not a
model: it lets the similarity tests know what must be found. Needs ``onnx`` (dev only):

    .venv/bin/python tools/make_colour_encoder.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "colour.encoder.onnx"
MEAN = [123.675, 116.28, 103.53]  # SAM's pixel mean and std (core.families.transforms)
STD = [58.395, 57.12, 57.375]
FEATURES = 11
SEED = 0


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _pool(src: str, dst: str) -> onnx.NodeProto:
    return helper.make_node("AveragePool", [src], [dst], kernel_shape=[16, 16], strides=[16, 16])


def build() -> onnx.ModelProto:
    rng = np.random.default_rng(SEED)
    proj = (rng.normal(size=(256, FEATURES, 1, 1)) / np.sqrt(FEATURES)).astype(np.float32)
    inits = [
        _init("mean", np.array(MEAN, np.float32)), _init("std", np.array(STD, np.float32)),
        _init("batch_axis", np.array([0], np.int64)),
        _init("channel_axis", np.array([1], np.int64)), _init("hw_idx", np.array([0, 1], np.int64)),
        _init("frame", np.array([1024, 1024], np.int64)), _init("pad_head", np.zeros(6, np.int64)),
        _init("gain", np.array(6.0, np.float32)),
        _init("eps", np.array(1e-6, np.float32)),
        _init("kx", np.array([[[[-1.0, 1.0]]]], np.float32)), _init("ky", np.array([[[[-1.0], [1.0]]]], np.float32)),
        _init("proj", proj),
    ]
    nodes = [
        helper.make_node("Sub", ["input_image", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["norm_hwc"]),
        helper.make_node("Transpose", ["norm_hwc"], ["norm_chw"], perm=[2, 0, 1]),
        helper.make_node("Unsqueeze", ["norm_chw", "batch_axis"], ["norm_small"]),  # [1, 3, H, W]
        helper.make_node("Shape", ["input_image"], ["shape"]),
        helper.make_node("Gather", ["shape", "hw_idx"], ["hw"]),
        helper.make_node("Sub", ["frame", "hw"], ["pad_tail"]),
        helper.make_node("Concat", ["pad_head", "pad_tail"], ["pads"], axis=0),
        helper.make_node("Pad", ["norm_small", "pads"], ["x"], mode="constant"),  # [1, 3, 1024, 1024]
        _pool("x", "cell_mean"),
        helper.make_node("Mul", ["x", "x"], ["x2"]),
        _pool("x2", "cell_sq"),
        helper.make_node("Mul", ["cell_mean", "cell_mean"], ["mean2"]),
        helper.make_node("Sub", ["cell_sq", "mean2"], ["var_raw"]),
        helper.make_node("Relu", ["var_raw"], ["var"]),
        helper.make_node("Add", ["var", "eps"], ["var_eps"]),
        helper.make_node("Sqrt", ["var_eps"], ["sd"]),
                helper.make_node("AveragePool", ["cell_mean"], ["context"], kernel_shape=[3, 3], strides=[1, 1],
                         pads=[1, 1, 1, 1], count_include_pad=0),
        helper.make_node("ReduceMean", ["x", "channel_axis"], ["lum"], keepdims=1),  # [1, 1, 1024, 1024]
        helper.make_node("Conv", ["lum", "kx"], ["dx"], pads=[0, 0, 0, 1]),
        helper.make_node("Conv", ["lum", "ky"], ["dy"], pads=[0, 0, 1, 0]),
        helper.make_node("Abs", ["dx"], ["adx"]),
        helper.make_node("Abs", ["dy"], ["ady"]),
        _pool("adx", "gx_raw"),
        _pool("ady", "gy_raw"),
        helper.make_node("Mul", ["gx_raw", "gain"], ["gx"]),
        helper.make_node("Mul", ["gy_raw", "gain"], ["gy"]),
        helper.make_node("Concat", ["cell_mean", "sd", "context", "gx", "gy"], ["feats"], axis=1),
        helper.make_node("Conv", ["feats", "proj"], ["image_embeddings"]),
    ]
    graph = helper.make_graph(
        nodes, "colour_encoder",
        [helper.make_tensor_value_info("input_image", TensorProto.FLOAT, ["H", "W", 3])],
        [helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, 256, 64, 64])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="ai_segmentation")
    model.ir_version = 8  # readable by onnxruntime >= 1.15
    onnx.checker.check_model(model, full_check=True)
    return model


if __name__ == "__main__":
    onnx.save(build(), str(OUT))
    print("wrote", OUT, OUT.stat().st_size, "bytes")
