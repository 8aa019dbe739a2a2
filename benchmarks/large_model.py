"""A synthetic ONNX model past protobuf's 2 GB limit, written tensor by tensor as external data.

Never committed: generated into a scratch folder by the benchmark. Its weights are never all in
memory at once while it is written.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

WIDTH = 8192
LAYERS = 10  # 10 x 8192 x 8192 x 4 B = 2.5 GiB of weights


def write_large_model(folder: Path, layers: int = LAYERS, width: int = WIDTH) -> Path:
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "large.onnx"
    data_name = "large.onnx.data"
    rng = np.random.default_rng(0)
    initializers, nodes = [], []
    offset = 0
    with open(folder / data_name, "wb") as data:
        previous = "x"
        for i in range(layers):
            weight = (rng.standard_normal((width, width), dtype=np.float32) / np.sqrt(width)).astype(np.float32)
            raw = weight.tobytes()
            data.write(raw)
            tensor = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[width, width])
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(len(raw)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            offset += len(raw)
            initializers.append(tensor)
            out = f"h{i}" if i < layers - 1 else "y"
            nodes.append(helper.make_node("MatMul", [previous, f"w{i}"], [f"m{i}"], name=f"matmul{i}"))
            nodes.append(helper.make_node("Tanh", [f"m{i}"], [out], name=f"tanh{i}"))
            previous = out
            del weight, raw
    graph = helper.make_graph(
        nodes, "large", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])], initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="stackc-bench")
    model.ir_version = 8
    onnx.save_model(model, str(model_path))
    return model_path


if __name__ == "__main__":
    import sys

    print(write_large_model(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/stackc-large")))
