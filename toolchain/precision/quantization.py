"""What the ONNX precision passes share: calibration samples, exclusions, and the int8 refusal.

ONNX Runtime's quantizers never say when they quantized nothing or made a model bigger (shared
notes: by hand, only 9 of 25 real models came out accurate and smaller). Every int8 result is
counted here and refused, with the reason, unless it is smaller than fp32 and something in it is
8-bit.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, PassError

# Ops that compute on, or convert to, 8-bit integers (QDQ, QOperator and dynamic forms).
QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
    "QLinearConv", "QLinearMatMul", "QGemm", "QAttention", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat", "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearGlobalAveragePool",
})
_INT8_TYPES = (2, 3)  # TensorProto.UINT8, TensorProto.INT8
_FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
CALIBRATION_METHODS = ("MinMax", "Entropy", "Percentile")


@dataclass(frozen=True)
class QuantCount:
    """How much of a model is 8-bit: what the int8 refusal and the manifest are based on."""

    quantized_nodes: int
    int8_weights: int
    int8_weight_bytes: int
    float_weight_bytes: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _tensor_bytes(tensor) -> int:
    import onnx

    count = 1
    for dim in tensor.dims:
        count *= int(dim)
    return count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def count_quantized(proto) -> QuantCount:
    from ..onnxlib.edit import graphs_within

    nodes = int8 = int8_bytes = float_bytes = 0
    for graph in graphs_within(proto.graph):
        nodes += sum(1 for n in graph.node if n.op_type in QUANTIZED_OPS)
        for tensor in graph.initializer:
            if tensor.data_type in _INT8_TYPES and len(tensor.dims) > 0:
                int8 += 1
                int8_bytes += _tensor_bytes(tensor)
            elif tensor.data_type in _FLOAT_TYPES:
                float_bytes += _tensor_bytes(tensor)
    return QuantCount(nodes, int8, int8_bytes, float_bytes)


def model_bytes(path: Path) -> int:
    """A model's size on disk, its external-data file included."""
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)


def nothing_quantized(what: str, counted: str, hint: str | None = None) -> PassError:
    """The refusal every int8 path gives (ONNX, TFLite) for an 'int8' model with no 8-bit weight: a mislabelled fp32 model."""
    return PassError(f"{what}: refusing to ship an 'int8' model in which nothing was quantized ({counted})", hint)


def check_int8(fp32_path: Path, int8_path: Path, what: str) -> dict[str, Any]:
    """The facts of an acceptable int8 model, or a PassError saying why it is not one.

    Acceptable: something is 8-bit, it is smaller than fp32, and its integer results are the same on
    every CPU (``int8_portability``: no weight an AVX2 kernel saturates on).
    """
    from ..onnxlib.model import load_onnx
    from .int8_portability import require_portable

    quantized = load_onnx(int8_path, load_external_data=False)
    count = count_quantized(quantized)
    fp32_size, int8_size = model_bytes(fp32_path), model_bytes(int8_path)
    if count.int8_weights == 0 or count.quantized_nodes == 0:
        raise nothing_quantized(
            what, f"{count.int8_weights} int8 weights, {count.quantized_nodes} quantized nodes",
            "weights must be initializers (not Constant nodes or inside If branches) and their ops must be "
            "quantizable and not excluded; check exclude_nodes / exclude_op_types / op_types",
        )
    if int8_size >= fp32_size:
        raise PassError(
            f"{what}: refusing to ship an 'int8' model that is not smaller than fp32 ({int8_size} B >= {fp32_size} B; "
            f"{count.int8_weights} weights quantized, {count.float_weight_bytes} B of float weights left)",
            "most weights were left in float; quantize more op types or use static int8",
        )
    portability = require_portable(quantized, what)
    return {"size_fp32": fp32_size, "size_int8": int8_size, "size_ratio": round(int8_size / fp32_size, 4),
            **count.as_dict(), "kernels": portability}


def resolve_exclusions(proto, nodes: tuple[str, ...], op_types: tuple[str, ...], where: str) -> list[str]:
    """Node names to leave in float: the named nodes (which must exist) plus every node of the named op types."""
    names = {n.name for n in proto.graph.node}
    unknown = [n for n in nodes if n not in names]
    if unknown:
        sample = ", ".join(sorted(n for n in names if n)[:8])
        raise InputError(f"{where}: exclude_nodes names {unknown[:5]}, which the model does not have "
                         f"(its nodes include: {sample})")
    return sorted(set(nodes) | {n.name for n in proto.graph.node if n.op_type in set(op_types) and n.name})


def ensure_node_names(proto) -> None:
    """Give unnamed nodes stable names (``<op>_<index>``) so exclusions and damage reports can name them."""
    used = {n.name for n in proto.graph.node if n.name}
    for index, node in enumerate(proto.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


HELD_OUT_SEED = 1_000_000  # random judging samples start here: never among the seeds calibration drew


def held_out_split(samples: list, judging: bool) -> tuple[list, bool]:
    """A user's calibration samples split in two: the first three quarters calibrate, the last quarter
    (at least one) judges the int8 artifact; fewer than 4 samples are all used for both (not held out)."""
    if len(samples) < 4:
        return samples, False
    keep = len(samples) - max(1, len(samples) // 4)
    return (samples[keep:] if judging else samples[:keep]), True


def calibration_samples(model_path: Path, facts: dict[str, Any], ctx, count: int, *, judging: bool = False):
    """Calibration samples for the model at ``model_path``, keyed by its own input names; with ``judging``
    the samples an int8 artifact is judged on, which it was not calibrated on (``held_out``) when possible.

    Calibration files use the source model's input names (what users know); the interface facts map
    them to the prepared model's names, as ``backends.execute`` does for parity samples.
    """
    from ..engine.execution import mapped
    from .calibration import load_calibration
    from ..onnxlib.interface import interface_of, to_artifact_inputs
    from ..onnxlib.model import TensorSpec, graph_inputs, index_bounds, load_onnx
    from ..onnxlib.shapes import concrete_shapes

    proto = load_onnx(model_path, load_external_data=False)
    renamed = {now: original for original, now in interface_of(facts)["inputs"].items()}
    specs = [TensorSpec(renamed.get(s.name, s.name), s.dtype, s.shape) for s in graph_inputs(proto)]
    known = {s.name for s in specs}
    shapes = concrete_shapes(specs, {k: v for k, v in ctx.shapes.items() if k in known}, ctx.shape_rule, fix_all=True)
    bounds = {renamed.get(name, name): high for name, high in index_bounds(proto).items()}
    source, seed = ctx.settings.calibration, ctx.settings.seed
    calibration = load_calibration(source, specs, shapes, count=count, bounds=bounds,
                                   seed=seed + HELD_OUT_SEED if judging and source is None else seed)
    if source is None:
        calibration.held_out = judging
    else:
        calibration.samples, calibration.held_out = held_out_split(calibration.samples, judging)
    calibration.samples = mapped(calibration.samples[:count], lambda s: to_artifact_inputs(facts, s))
    return calibration


def ort_reader(samples: list[dict[str, Any]]):
    """An ONNX Runtime CalibrationDataReader over in-memory samples."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._items = iter(samples)

        def get_next(self):
            return next(self._items, None)

    return _Reader()


@contextlib.contextmanager
def quiet_quantizer():
    """ONNX Runtime's quantizers log advice through the root logger and print calibration progress on
    stdout (which would corrupt ``stackc build --json``); stackc reports its own facts instead."""
    import io

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
