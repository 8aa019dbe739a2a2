"""ONNX in float16: weights and compute in float16 via onnxconverter-common, fp32 at the edges by default.

``keep_io_types`` keeps the model's inputs and outputs float32 (callers feed what they fed
before). Ops whose float16 results overflow or lose too much stay float32: onnxconverter-common's
own block list plus ``OVERFLOW_PRONE`` plus the recipe's ``op_block_list`` / ``node_block_list``.
The convert.onnx and convert.ort passes call ``to_fp16`` for fp16 variants.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PassError
from ..onnxlib.model import load_onnx, save_onnx

# Exponentials and sums of squares leave float16's range (65504) long before float32's.
OVERFLOW_PRONE = ("Exp", "Pow", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "Softplus")


@dataclass(frozen=True)
class Options:
    keep_io_types: bool = True
    op_block_list: tuple[str, ...] = ()     # op types kept in float32, added to the defaults
    node_block_list: tuple[str, ...] = ()   # node names kept in float32


def to_fp16(src: Path, dst: Path, options: Options) -> dict[str, Any]:
    """Write the float16 model of ``src`` to ``dst``; return what was chosen and converted."""
    from onnxconverter_common import float16

    proto = load_onnx(src)
    blocked = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(OVERFLOW_PRONE) | set(options.op_block_list))
    import warnings

    with warnings.catch_warnings():  # per-constant truncation notes; the parity policy judges the result
        warnings.simplefilter("ignore")
        converted = float16.convert_float_to_float16(
            proto, keep_io_types=options.keep_io_types, op_block_list=blocked,
            node_block_list=list(options.node_block_list) or None,
        )
    _agree_casts(converted)
    fp16_weights = sum(1 for t in converted.graph.initializer if t.data_type == 10)
    if fp16_weights == 0:
        raise PassError("fp16: refusing to ship an 'fp16' model in which no weight is float16 "
                        "(every op holding weights is blocked or the model has no float weights)")
    _check_loads(converted)
    save_onnx(converted, dst)
    return {
        "keep_io_types": options.keep_io_types,
        "op_block_list": [op for op in blocked if op in {n.op_type for n in proto.graph.node}],
        "node_block_list": list(options.node_block_list),
        "fp16_weights": fp16_weights,
        "float32_weights": sum(1 for t in converted.graph.initializer if t.data_type == 1),
    }


def _check_loads(model) -> None:
    """onnxconverter-common can write type-inconsistent graphs (seen: Gather/Cast on a BERT-like model);
    say so at conversion, with what to do, rather than as a runtime failure later."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        detail = " ".join(str(e).split())[-220:]
        raise PassError(f"fp16: onnxconverter-common wrote a model ONNX Runtime rejects: {detail}",
                        "keep the named node's op type in float32 with fp16_op_block_list / fp16_node_block_list") from None


def _agree_casts(model) -> None:
    """onnxconverter-common retypes a Cast's output to float16 but leaves its ``to`` at float32 when the
    Cast's input is not float (an int64 attention mask cast to float, say): ONNX Runtime then rejects
    the model. Make such Casts produce the float16 their consumers now expect."""
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*model.graph.input, *model.graph.value_info]}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    outputs = {o.name for o in model.graph.output}
    float16_values = {vi.name for vi in model.graph.value_info if vi.type.tensor_type.elem_type == 10}
    for node in model.graph.node:
        if (node.op_type == "Cast" and node.output[0] in float16_values and node.output[0] not in outputs
                and types.get(node.input[0]) not in (None, 1, 10)):
            for attr in node.attribute:
                if attr.name == "to" and attr.i == 1:
                    attr.i = 10
