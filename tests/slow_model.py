"""A deliberately slow ONNX graph with a SAM encoder's signature, for cancellation tests.

``input_image [H, W, 3]`` -> ``image_embeddings [1, 256, 64, 64]`` through ``n`` chained
1024 x 1024 MatMuls (about 2 GFLOP each): seconds to minutes on a CPU. The values are
meaningless; only the time matters. Needs the ``onnx`` package (dev only).
"""

from __future__ import annotations

import numpy as np


def write_slow_encoder(path, n: int = 400) -> str:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    eye = numpy_helper.from_array(np.eye(1024, dtype=np.float32), "eye")
    shape = numpy_helper.from_array(np.array([1, 256, 64, 64], np.int64), "shape")
    nodes = [helper.make_node("ReduceMean", ["input_image"], ["m"], keepdims=0),
             helper.make_node("Mul", ["eye", "m"], ["x0"])]  # depends on the input: nothing to fold
    for i in range(n):
        nodes.append(helper.make_node("MatMul", [f"x{i}", "eye"], [f"x{i + 1}"]))
    nodes.append(helper.make_node("Reshape", [f"x{n}", "shape"], ["image_embeddings"]))
    graph = helper.make_graph(
        nodes, "slow_encoder",
        [helper.make_tensor_value_info("input_image", TensorProto.FLOAT, ["H", "W", 3])],
        [helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, 256, 64, 64])],
        [eye, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)
