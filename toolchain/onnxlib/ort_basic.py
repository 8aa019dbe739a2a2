"""ONNX Runtime's offline basic graph optimizer, used to simplify a canonical model.

The basic level folds constants, drops redundant nodes (Identity, Dropout, no-op Slice and
Unsqueeze) and fuses Conv with a following Add, Mul or BatchNormalization. It does this in C++
and writes only ONNX's own operators. On the corpus detectors it took 0.03-0.17 s where
onnxslim's Python passes took 1.2-1.5 s. ``passes/optimize.py`` says when it is chosen.
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
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})


class NotOptimized(Exception):
    """ONNX Runtime cannot take this model (an operator it lacks, a quantized graph); the message says why."""


def optimize_basic(proto):
    """``proto`` as ONNX Runtime's basic level leaves it; opset imports as the source had them.

    Raises NotOptimized for a QDQ graph: ONNX Runtime gives each consumer its own DequantizeLinear
    whatever rewrites are disabled, so the graph would be reshaped for its kernels.
    """
    import onnx
    import onnxruntime as ort

    if any(node.op_type in QDQ_OPS for node in proto.graph.node):
        raise NotOptimized("the graph is quantized (QDQ), and ONNX Runtime would give each consumer its own "
                           "DequantizeLinear")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.intra_op_num_threads = 1  # the rewrites and folding are serial; no thread pool to start
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="stackc-ort-basic-") as folder:
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        try:
            ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"],
                                 disabled_optimizers=list(DISABLED))
        except Exception as e:  # an operator or opset ONNX Runtime does not implement
            raise NotOptimized(f"ONNX Runtime cannot load it: {' '.join(str(e).split())[:300]}") from None
        optimized = onnx.load(options.optimized_model_filepath)
    _keep_opsets(proto, optimized)
    return optimized


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
