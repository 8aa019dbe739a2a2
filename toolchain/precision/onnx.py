"""A variant's precision applied to an ONNX artifact (``convert.onnx`` and ``convert.ort``).

Precision is chosen per variant, not in preparation: every variant converts the one prepared
fp32 model, and an fp16 or int8 variant gets its own copy through the helpers of the fp16,
quantize.static and quantize.dynamic passes. Options come flat from the variant (``[[variants]]
options``) or from the recipe's ``[convert.onnx]`` / ``[convert.ort]`` table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingDependencyError
from ..onnxlib.model import copy_onnx
from . import onnx_fp16, onnx_int8_dynamic, onnx_int8_static
from .calibration import CALIBRATION_SAMPLES
from .quantization import calibration_samples

WORK_FACT = "precision_work"  # paths for the damage report; not written to the manifest


@dataclass(frozen=True)
class PrecisionOptions:
    """Options of the ONNX conversion passes that choose how fp16 and int8 variants are made."""

    int8_mode: str = "static"                   # "static" (QDQ, calibrated) | "dynamic" (weights only)
    calibration_method: str = "MinMax"          # static: "MinMax" | "Entropy" | "Percentile"
    calibration_samples: int = CALIBRATION_SAMPLES
    per_channel: bool | None = None             # None: static True, dynamic False
    activation_type: str = "int8"               # static: "int8" | "uint8"
    dynamic_op_types: tuple[str, ...] = onnx_int8_dynamic.DEFAULT_OP_TYPES
    exclude_nodes: tuple[str, ...] = ()         # node names left in float (see a failed build's damage report)
    exclude_op_types: tuple[str, ...] = ()      # op types left in float
    fp16_keep_io_types: bool = True
    fp16_op_block_list: tuple[str, ...] = ()
    fp16_node_block_list: tuple[str, ...] = ()

    def __post_init__(self):
        if self.int8_mode not in ("static", "dynamic"):
            raise ValueError(f"option 'int8_mode' is '{self.int8_mode}'; known values: static, dynamic")
        self.static_options()  # the static quantizer's own checks, before any run

    def static_options(self) -> onnx_int8_static.Options:
        return onnx_int8_static.Options(
            calibration_method=self.calibration_method, calibration_samples=self.calibration_samples,
            per_channel=True if self.per_channel is None else self.per_channel, activation_type=self.activation_type,
            exclude_nodes=self.exclude_nodes, exclude_op_types=self.exclude_op_types)

    def dynamic_options(self) -> onnx_int8_dynamic.Options:
        return onnx_int8_dynamic.Options(op_types=self.dynamic_op_types, per_channel=bool(self.per_channel),
                                        exclude_nodes=self.exclude_nodes, exclude_op_types=self.exclude_op_types)

    def fp16_options(self) -> onnx_fp16.Options:
        return onnx_fp16.Options(keep_io_types=self.fp16_keep_io_types, op_block_list=self.fp16_op_block_list,
                            node_block_list=self.fp16_node_block_list)


def apply_precision(model, precision: str, options: PrecisionOptions, ctx, out_dir: Path) -> tuple[Path, dict, dict]:
    """Write ``model`` in ``precision`` under ``out_dir``: (path, facts for the manifest, private work facts)."""
    path = out_dir / "model.onnx"
    work = out_dir / "precision-work"
    work.mkdir(parents=True, exist_ok=True)
    if precision == "fp32":
        copy_onnx(model.path, path)
        return path, {}, {}
    if precision == "fp16":
        import importlib.util

        if importlib.util.find_spec("onnxconverter_common") is None:
            raise MissingDependencyError("fp16 ONNX variants need onnxconverter-common", "pip install onnxconverter-common")
        facts = onnx_fp16.to_fp16(model.path, path, options.fp16_options())
        ctx.log.info("[precision] fp16: %d weights in float16", facts["fp16_weights"])
        return path, {"precision": {"tool": "onnxconverter-common", **facts}}, {}
    if options.int8_mode == "dynamic":
        facts = onnx_int8_dynamic.quantize_dynamic_model(model.path, path, options.dynamic_options(), work)
        reference = work / "named.onnx"
    else:
        calibration = calibration_samples(model.path, model.facts, ctx, options.calibration_samples)
        facts = onnx_int8_static.quantize_static_model(model.path, path, options.static_options(), calibration, work)
        reference = work / "preprocessed.onnx"
    ctx.log.info("[precision] int8 %s: %d weights int8, %d quantized nodes, size x%.3f of fp32",
                 facts["mode"], facts["int8_weights"], facts["quantized_nodes"], facts["size_ratio"])
    return path, {"precision": {"tool": "onnxruntime.quantization", **facts}}, \
        {WORK_FACT: {"fp32": str(reference), "int8": str(path)}}


def precision_of(ctx, model) -> str:
    return ctx.variant.precision if ctx.variant is not None else model.precision

