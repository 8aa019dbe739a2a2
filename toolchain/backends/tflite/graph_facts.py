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
    """Each tensor's inferred dims (``None`` where unknown), for inputs, intermediates and outputs.

    Inferred on the model without its large weights (``onnxlib/shape_inference.py``): the same shapes,
    and on the 88 MB ResNet-50 the rewrites' six calls no longer serialize it six times (2.0 s)."""
    import onnx

    from ...onnxlib.shape_inference import weightless

    inferred = onnx.shape_inference.infer_shapes(weightless(model)[0], strict_mode=False)
    shapes = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def opset_of(model) -> int:
    """The default (ai.onnx) domain's opset; 1 when the model imports none (IR < 3, before opset imports)."""
    return opsets(model).get("ai.onnx", 1)


def id_inputs(model) -> list[str]:
    """Integer rank 3-5 graph inputs used only as ``Gather`` indices (token or distance ids, say).

    Ids have no channel axis: onnx2tf's channel-last transposition of such an input is meaningless,
    and where the ids form a square matrix it cannot tell the axes apart. Measured on rxnmap: its
    [1, 32, 32] atom-distance ids, transposed NCW -> NWC, gave the attention bias transposed
    (cosine 0.87 after one layer; taken as they are: 0.9999999999995).
    """
    from onnx import TensorProto

    integer = {TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
               TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64}
    uses: dict[str, list[tuple[str, int]]] = {}
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            uses.setdefault(name, []).append((node.op_type, position))
    initializers = {t.name for t in model.graph.initializer}
    found = []
    for value in model.graph.input:
        tensor = value.type.tensor_type
        if value.name in initializers or tensor.elem_type not in integer or len(tensor.shape.dim) not in (3, 4, 5):
            continue
        used = uses.get(value.name, [])
        if used and all(use == ("Gather", 1) for use in used):
            found.append(value.name)
    return found
