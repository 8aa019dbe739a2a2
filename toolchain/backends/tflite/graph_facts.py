"""What the TFLite rewrites read off an ONNX graph: its constant values, inferred shapes and opset.

One module for the ONNX rewrites (``rewrites``, ``int8_rewrites``, ``qdq``) to share, so none of them
imports another's privates (issue 18: they used to import each other in a circle).
"""
from __future__ import annotations

import numpy as np

from ...onnxlib.model import opsets


def constants_of(model) -> dict[str, np.ndarray]:
    """Every initializer and ``Constant``-node value of the main graph, by tensor name."""
    from onnx import numpy_helper

    found = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def shapes_of(model) -> dict[str, list[int | None]]:
    """Each tensor's inferred dims (``None`` where unknown), for inputs, intermediates and outputs."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    shapes = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def opset_of(model) -> int:
    """The default (ai.onnx) domain's opset; 1 when the model imports none (IR < 3, before opset imports)."""
    return opsets(model).get("ai.onnx", 1)
