"""What TFLite Micro can run: its builtin kernels, and the check a ``.tflite`` must pass before it ships.

``RESOLVER_METHODS`` maps each TFLite builtin operator that TFLM registers to the
``MicroMutableOpResolver`` method that adds it (``tensorflow/lite/micro/micro_mutable_op_resolver.h``).
It was read from the pinned tflite-micro build (its ``_runtime.so`` exports a ``Register_<OP>`` kernel
for each); ``tests/backends/test_tflm.py`` checks every name against that build's schema. An op outside
it is refused before anything runs on a board, naming it and what to use instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RESOLVER_METHODS = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce", "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D", "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "ELU": "AddElu", "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather", "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish", "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable", "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear", "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound", "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth", "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare", "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}

# What to use instead of an op TFLM lacks (ops a full-integer TFLite graph commonly holds).
ALTERNATIVES = {
    "GELU": "a ReLU or HardSwish activation in the source model (TFLM has HARD_SWISH, LOGISTIC, TANH)",
    "TILE": "a constant or BROADCAST_TO-able shape (TFLM has BROADCAST_TO)",
    "TOPK_V2": "ARG_MAX on the device, or top-k in application code",
    "ONE_HOT": "one-hot inputs made by the application",
    "RANGE": "a constant (fix the shapes with --shape so it folds)",
    "SELECT": "SELECT_V2 (where with broadcasting)",
    "POW": "MUL or SQUARE for integer exponents",
    "REDUCE_PROD": "a SUM of logarithms, or the product in application code",
    "LOCAL_RESPONSE_NORMALIZATION": "BatchNorm (folded into the convolution) instead of LRN",
    "LSTM": "a unidirectional LSTM (UNIDIRECTIONAL_SEQUENCE_LSTM)",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "one UNIDIRECTIONAL_SEQUENCE_LSTM per direction",
    "RNN": "UNIDIRECTIONAL_SEQUENCE_LSTM, or a GRU/RNN unrolled into FULLY_CONNECTED ops",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "UNIDIRECTIONAL_SEQUENCE_LSTM, or the RNN unrolled into FULLY_CONNECTED ops",
    "CONV_3D": "CONV_2D over folded depth",
    "NON_MAX_SUPPRESSION_V4": "the TFLite_Detection_PostProcess custom op, or NMS in application code",
    "NON_MAX_SUPPRESSION_V5": "the TFLite_Detection_PostProcess custom op, or NMS in application code",
}
DEFAULT_ALTERNATIVE = "change the source model to avoid it, or register your own kernel for it in the firmware"
RESOURCE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")
SUPPORTED_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "FLOAT32", "BOOL")


class NotForMicro(Exception):
    """The ``.tflite`` cannot run in TFLM: the message names every reason."""


@dataclass
class Anatomy:
    """What the check read from the flatbuffer."""

    ops: dict[str, int] = field(default_factory=dict)  # builtin name -> count, over every subgraph
    custom_ops: list[str] = field(default_factory=list)
    dynamic: list[str] = field(default_factory=list)   # tensors whose shape_signature has -1
    resource_variables: int = 0
    float_ops: list[str] = field(default_factory=list)  # ops computing in float32 (not full-integer)
    types: set[str] = field(default_factory=set)

    def resolver(self) -> list[str]:
        """The ``MicroMutableOpResolver`` registration calls, in a stable (alphabetical) order."""
        return sorted(RESOLVER_METHODS[op] for op in self.ops)


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def read_model(tflite: bytes):
    """The flatbuffer as TFLM's own schema classes read it (``ModelT``)."""
    schema = _schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tflite), 0))


def _names(enum_class) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


def anatomy(tflite: bytes) -> Anatomy:
    schema = _schema()
    model = read_model(tflite)
    op_names, type_names = _names(schema.BuiltinOperator), _names(schema.TensorType)
    found = Anatomy()
    for subgraph in model.subgraphs or []:
        tensors = subgraph.tensors or []
        for tensor in tensors:
            found.types.add(type_names.get(tensor.type, str(tensor.type)))
            signature = tensor.shapeSignature
            if signature is not None and any(int(d) < 0 for d in signature):
                found.dynamic.append(_text(tensor.name))
        for op in subgraph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            name = op_names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                found.custom_ops.append(_text(code.customCode))
                continue
            found.ops[name] = found.ops.get(name, 0) + 1
            inputs = [tensors[i] for i in (op.inputs if op.inputs is not None else []) if i >= 0]
            if name not in ("QUANTIZE", "DEQUANTIZE") and any(type_names.get(t.type) == "FLOAT32" for t in inputs):
                found.float_ops.append(name)
    found.ops = dict(sorted(found.ops.items()))
    found.resource_variables = sum(found.ops.get(op, 0) for op in ("VAR_HANDLE",))
    return found


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value or "")


def check(tflite: bytes) -> Anatomy:
    """The model's anatomy, or ``NotForMicro`` naming every op TFLM lacks (with its alternative),
    every dynamic tensor, resource variable and float op (TFLM variants are full-integer)."""
    found = anatomy(tflite)
    problems = []
    missing = [op for op in found.ops if op not in RESOLVER_METHODS]
    for op in missing:
        problems.append(f"op {op} has no TFLite Micro kernel (use {ALTERNATIVES.get(op, DEFAULT_ALTERNATIVE)})")
    for custom in sorted(set(found.custom_ops)):
        problems.append(f"custom op '{custom}' is not a TFLite Micro builtin ({DEFAULT_ALTERNATIVE})")
    if found.dynamic:
        problems.append(f"dynamic shapes (tensor {found.dynamic[0]}"
                        + (f" and {len(found.dynamic) - 1} more" if len(found.dynamic) > 1 else "")
                        + "): TFLM plans its arena ahead of time; fix them with --shape")
    if found.resource_variables or any(op in found.ops for op in RESOURCE_OPS):
        problems.append("resource variables (VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE): "
                        "stateful graphs are not shipped for microcontrollers")
    unsupported_types = sorted(found.types - set(SUPPORTED_TYPES))
    if unsupported_types:
        problems.append(f"tensor types TFLM kernels lack: {', '.join(unsupported_types)}")
    if found.float_ops:
        problems.append(f"float32 compute in {', '.join(sorted(set(found.float_ops)))}: not full-integer int8")
    if problems:
        raise NotForMicro("; ".join(problems))
    return found
