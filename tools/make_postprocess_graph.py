"""Write core/families/graphs/*.onnx: the families' mask post-processing as tiny ONNX graphs.

``postprocess_masks.onnx`` does what ``Sam.postprocess_masks`` does (torch bilinear,
align_corners=False): upscale ``[K, 256, 256]`` logits to 1024x1024, crop the padding to the
resized input size, resize to the original size, threshold at 0. ``resize_masks.onnx`` does
SAM 2.1's (``SAM2Transforms.postprocess_masks``): one bilinear step from 256x256 straight to
the original size, threshold at 0. ONNX Runtime's Resize does these several times faster than
numpy (not so its cubic mode: EfficientSAM's bicubic step is ``transforms.BandedUpscale``).
Needs the ``onnx`` package (dev only):

    .venv/bin/python tools/make_postprocess_graph.py
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

GRAPHS = Path(__file__).resolve().parents[1] / "core" / "families" / "graphs"
RESIZE = dict(mode="linear", coordinate_transformation_mode="half_pixel")  # = align_corners=False


def _const(name: str, values: list) -> onnx.NodeProto:
    tensor = helper.make_tensor(name, TensorProto.INT64, [len(values)], values)
    return helper.make_node("Constant", [], [name], value=tensor)


def _threshold(src: str) -> list:
    return [
        helper.make_node("Constant", [], ["zero_f"], value=helper.make_tensor("zero_f", TensorProto.FLOAT, [], [0.0])),
        helper.make_node("Greater", [src, "zero_f"], ["masks"]),
    ]


def _model(nodes: list, name: str, inputs: list) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("low_res_masks", TensorProto.FLOAT, ["K", 256, 256]), *inputs],
        [helper.make_tensor_value_info("masks", TensorProto.BOOL, ["K", "H", "W"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="ai_segmentation")
    model.ir_version = 8  # readable by onnxruntime >= 1.15
    onnx.checker.check_model(model)
    return model


def _size_input(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT64, [2])


def build_sam() -> onnx.ModelProto:
    resize = RESIZE
    nodes = [
        _const("axis1", [1]), _const("frame", [1024, 1024]), _const("start", [0, 0]), _const("axes23", [2, 3]),
        _const("zero", [0]), _const("two", [2]),
        helper.make_node("Unsqueeze", ["low_res_masks", "axis1"], ["x4"]),  # [K, 1, 256, 256]
        helper.make_node("Shape", ["x4"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "two"], ["k1"]),  # [K, 1]
        helper.make_node("Concat", ["k1", "frame"], ["size_frame"], axis=0),
        helper.make_node("Resize", ["x4", "", "", "size_frame"], ["up"], **resize),
        helper.make_node("Slice", ["up", "start", "input_size", "axes23"], ["cropped"]),
        helper.make_node("Concat", ["k1", "original_size"], ["size_orig"], axis=0),
        helper.make_node("Resize", ["cropped", "", "", "size_orig"], ["logits4"], **resize),
        helper.make_node("Squeeze", ["logits4", "axis1"], ["logits"]),
        *_threshold("logits"),
    ]
    return _model(nodes, "sam_postprocess_masks", [_size_input("input_size"), _size_input("original_size")])


def build_resize(mode: dict, name: str) -> onnx.ModelProto:
    nodes = [
        _const("axis1", [1]), _const("zero", [0]), _const("two", [2]),
        helper.make_node("Unsqueeze", ["low_res_masks", "axis1"], ["x4"]),  # [K, 1, 256, 256]
        helper.make_node("Shape", ["x4"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "two"], ["k1"]),  # [K, 1]
        helper.make_node("Concat", ["k1", "original_size"], ["size_orig"], axis=0),
        helper.make_node("Resize", ["x4", "", "", "size_orig"], ["logits4"], **mode),
        helper.make_node("Squeeze", ["logits4", "axis1"], ["logits"]),
        *_threshold("logits"),
    ]
    return _model(nodes, name, [_size_input("original_size")])


if __name__ == "__main__":
    GRAPHS.mkdir(exist_ok=True)
    graphs = {"postprocess_masks.onnx": build_sam(), "resize_masks.onnx": build_resize(RESIZE, "resize_masks")}
    for name, model in graphs.items():
        out = GRAPHS / name
        onnx.save(model, str(out))
        print("wrote", out, out.stat().st_size, "bytes")
