"""ONNX Runtime's offline basic graph optimizer, used to simplify a canonical model.

The basic level folds constants, drops redundant nodes (Identity, Dropout, no-op Slice and
Unsqueeze) and fuses Conv with a following Add, Mul or BatchNormalization. It does this in C++
and writes only ONNX's own operators. On the corpus detectors it took 0.03-0.17 s where
onnxslim's Python passes took 1.2-1.5 s. ``passes/optimize.py`` says when it is chosen.

The large weights do not travel as protobuf: ONNX Runtime borrows them from the model in memory
and writes them raw beside the model it saves, which ``_load_written`` reads back inline.

A quantized (QDQ) graph keeps its Q/DQ nodes where the source put them: the rewrites that move or
merge them are left off, and the DequantizeLinear copies ONNX Runtime always makes (one per
consumer, ``EnsureUniqueDQForNodeUnit``) are merged back. On the int8 ResNet-50 that took 0.05-0.1 s
where onnxslim's two rounds took 0.3 s, and gave the source's 347 nodes, wired as they were.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

# Basic-level rewrites left off, with the reason each is left off (recorded in the manifest):
DISABLED = {
    "MatMulAddFusion": "it turns a MatMul+Add on 3-D tensors into Reshape, Gemm, Reshape; "
                       "ONNX Runtime and OpenVINO fuse MatMul+Add themselves when they load the model",
    "ConstantSharing": "it merges equal small constants into new 'ortshared_*' initializers",
}
# and, in a quantized (QDQ) graph, those that move or merge its Q/DQ nodes: the canonical model keeps
# the source's quantization as it was written (each was needed: see tests/passes/test_optimize_engine.py)
DISABLED_IN_QDQ = {
    "QDQPropagationTransformer": "it copies a QuantizeLinear/DequantizeLinear pair across Transpose, Reshape, "
                                 "MaxPool and the like; the quantized graph keeps the source's Q/DQ placement",
    "TransposeOptimizer": "in a quantized graph it also copies Q/DQ pairs across the Transposes it moves",
    "DoubleQDQPairsRemover": "it merges back-to-back Q/DQ pairs into one, choosing one pair's scale for both",
}
WEIGHTS_FILE = "weights.bin"  # beside the model ONNX Runtime writes
LENT = "stackc-lent-from-memory"  # the location of a weight lent to ONNX Runtime: no file has this name
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})


class NotOptimized(Exception):
    """ONNX Runtime cannot take this model (an operator it lacks, Q/DQ nodes it moved); the message says why."""


def rewrites_left_off(proto) -> dict[str, str]:
    """The basic-level rewrites left off for ``proto``, with the reason for each."""
    return {**DISABLED, **DISABLED_IN_QDQ} if is_quantized(proto) else dict(DISABLED)


def is_quantized(proto) -> bool:
    """Whether ``proto``'s main graph has QuantizeLinear / DequantizeLinear nodes (a QDQ model)."""
    return any(node.op_type in QDQ_OPS for node in proto.graph.node)


def optimize_basic(proto):
    """``proto`` as ONNX Runtime's basic level leaves it; opset imports as the source had them.

    In a quantized (QDQ) graph ONNX Runtime gives each consumer its own copy of a shared
    DequantizeLinear, whatever rewrites are disabled; the copies are merged back into it.
    """
    disabled = list(rewrites_left_off(proto))
    with tempfile.TemporaryDirectory(prefix="stackc-ort-basic-") as folder:
        written = Path(folder) / "optimized.onnx"
        try:
            _optimize(proto, written, disabled, lend_weights=True)
        except Exception:  # ONNX Runtime needed a lent weight's bytes (a shape tensor), or cannot load the model
            try:
                _optimize(proto, written, disabled, lend_weights=False)
            except Exception as e:  # an operator or opset ONNX Runtime does not implement
                raise NotOptimized(f"ONNX Runtime cannot load it: {' '.join(str(e).split())[:300]}") from None
        optimized = _load_written(written)
    _keep_opsets(proto, optimized)
    if is_quantized(proto):
        merge_dequantize_copies(proto, optimized)
    return optimized


def merge_dequantize_copies(source, optimized) -> None:
    """Merge each DequantizeLinear ONNX Runtime added (one whose output the source does not name)
    back into the source's DequantizeLinear of the same inputs and attributes, in place.

    The merged node stands where the first of its copies stood, so the order stays topological.
    Raises NotOptimized if ONNX Runtime's copies could not all be told apart and merged.
    """
    from .edit import rename_uses

    graph = optimized.graph
    named_by_source = {name for node in source.graph.node for name in node.output}
    pinned = {o.name for o in graph.output}

    def key(node):
        return node.domain, tuple(node.input), tuple(a.SerializeToString() for a in node.attribute)

    dequantize = [(index, node) for index, node in enumerate(graph.node) if node.op_type == "DequantizeLinear"]
    original_at = {}  # key -> index of the source's own DequantizeLinear
    for index, node in dequantize:
        if node.output[0] in named_by_source:
            original_at.setdefault(key(node), index)
    copy_of = {index: original_at[key(node)] for index, node in dequantize  # copy's index -> original's
               if node.output[0] not in named_by_source and node.output[0] not in pinned and key(node) in original_at}
    placed_at = {}  # original's index -> where it now stands: the first index of it and its copies
    for index, original in copy_of.items():
        placed_at[original] = min(placed_at.get(original, original), index)
    order = []
    for index in range(len(graph.node)):
        if index in copy_of:
            if placed_at[copy_of[index]] == index:
                order.append(copy_of[index])
        elif placed_at.get(index, index) == index:
            order.append(index)
    merged = {graph.node[index].output[0]: graph.node[original].output[0] for index, original in copy_of.items()}
    nodes = [graph.node[index] for index in order]
    del graph.node[:]
    graph.node.extend(nodes)
    rename_uses(graph, merged)
    before, after = _dequantize_count(source), _dequantize_count(optimized)
    if after > before:
        raise NotOptimized(f"ONNX Runtime gave consumers their own DequantizeLinear: {before} became {after}, "
                           "and not every copy could be merged back")


def _dequantize_count(model) -> int:
    return sum(node.op_type == "DequantizeLinear" for node in model.graph.node)


def _load_written(written: Path):
    """The model ONNX Runtime wrote, its large weights (in ``WEIGHTS_FILE``) read back into it as
    they are inline: ONNX Runtime also marks each such tensor with an empty ``doc_string``, and
    loading external data marks it ``data_location`` DEFAULT; both marks are cleared."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    model = onnx.load(written, load_external_data=False)
    moved = [t for t in model.graph.initializer if uses_external_data(t)]
    load_external_data_for_model(model, str(written.parent))
    for tensor in moved:
        tensor.ClearField("data_location")
        if not tensor.doc_string:
            tensor.ClearField("doc_string")
    return model


def _optimize(proto, written: Path, disabled: list[str], lend_weights: bool) -> None:
    """ONNX Runtime's basic level on ``proto``, its result written to ``written``.

    ``lend_weights``: the model is serialized without its large weights, which ONNX Runtime takes
    from the proto's own bytes (``add_external_initializers``) and writes into the result as usual.
    Serializing the 88 MB ResNet-50 whole took 0.15-0.18 s of the session's 0.3-0.5 s; the result
    is the same bytes (tested on the fixtures; checked on the corpus).
    """
    import numpy as np
    import onnx
    import onnxruntime as ort

    from .shape_inference import LIFTED_AT_BYTES, weightless

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.intra_op_num_threads = 1  # the rewrites and folding are serial; no thread pool to start
    options.log_severity_level = 3
    options.optimized_model_filepath = str(written)
    # large weights written raw beside the model, not inside it: ONNX Runtime writing the 88 MB
    # ResNet-50 inline took 0.1-0.15 s more, and reading it back is no faster (_load_written)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", WEIGHTS_FILE)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                     str(LIFTED_AT_BYTES))
    if not lend_weights:
        serialized = proto.SerializeToString()
    else:
        skeleton, lifted = weightless(proto)
        names, values = [], []
        for index in lifted:
            tensor, stub = proto.graph.initializer[index], skeleton.graph.initializer[index]
            stub.data_location = onnx.TensorProto.EXTERNAL
            stub.external_data.add(key="location", value=LENT)
            array = np.frombuffer(tensor.raw_data, dtype=onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
            names.append(tensor.name)
            values.append(ort.OrtValue.ortvalue_from_numpy(array.reshape(tuple(tensor.dims))))
        if names:
            options.add_external_initializers(names, values)
        serialized = skeleton.SerializeToString()
    ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)


def _keep_opsets(before, after) -> None:
    """ONNX Runtime declares every domain it knows (com.microsoft, ...): keep the source's imports,
    and refuse a result whose nodes use a domain the source did not import."""
    declared = {_domain(o.domain) for o in before.opset_import}
    foreign = sorted({_domain(node.domain) for node in after.graph.node} - declared)
    if foreign:
        raise NotOptimized(f"ONNX Runtime wrote operators of domains the source does not import: {foreign}")
    del after.opset_import[:]
    after.opset_import.extend(before.opset_import)


def _domain(name: str) -> str:
    return "" if name == "ai.onnx" else name
