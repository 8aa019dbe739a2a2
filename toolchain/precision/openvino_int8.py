"""OpenVINO int8: NNCF post-training quantization of the converted model, on the calibration data.

Called by ``convert.openvino`` for int8 variants. Like the ONNX quantizers, the result is counted
(FakeQuantize ops, int8 constants in the saved IR) and refused unless it is smaller than the fp32
IR and something in it is 8-bit. Exclusions name ONNX op types (mapped to OpenVINO's) or OpenVINO
operation names.

NNCF's overflow fix is on for every layer (its default covers only the first): OpenVINO's int8 kernels
on x86 CPUs without VNNI sum u8*s8 pairs in saturating int16, and 7-bit weights are what keep the
accuracy measured here the same on AVX2, AVX-512 and VNNI hosts (``int8_portability.py``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError, PassError

# ONNX op type -> the OpenVINO operation types it becomes (for ``exclude_op_types``).
ONNX_TO_OPENVINO_TYPES = {
    "Conv": ("Convolution", "GroupConvolution"), "ConvTranspose": ("ConvolutionBackpropData",),
    "Gemm": ("MatMul",), "MatMul": ("MatMul",), "Add": ("Add",), "Mul": ("Multiply",),
    "AveragePool": ("AvgPool",), "MaxPool": ("MaxPool",), "GlobalAveragePool": ("ReduceMean",),
}
PRESETS = ("performance", "mixed")


def quantize(ov_model, onnx_path: Path, facts_in: dict, ctx, options) -> tuple[Any, dict[str, Any]]:
    """The NNCF-quantized ``ov_model`` and what was chosen; ``options`` are convert.openvino's."""
    import importlib.util

    if importlib.util.find_spec("nncf") is None:
        raise MissingDependencyError("OpenVINO int8 variants need NNCF", "pip install 'stackc[int8]' (or: pip install nncf)")
    import nncf

    from .quantization import calibration_samples

    calibration = calibration_samples(onnx_path, facts_in, ctx, options.calibration_samples)
    input_names = [port.get_any_name() for port in ov_model.inputs]

    def transform(sample: dict):
        return {name: sample[name] for name in input_names if name in sample} or list(sample.values())

    types = sorted({t for op in options.exclude_op_types for t in ONNX_TO_OPENVINO_TYPES.get(op, (op,))})
    ignored = nncf.IgnoredScope(names=list(options.exclude_nodes), types=types) \
        if (options.exclude_nodes or types) else None
    kwargs = {"ignored_scope": ignored} if ignored else {}
    if options.model_type == "transformer":
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    kwargs["advanced_parameters"] = nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE)
    quantized = nncf.quantize(
        ov_model, nncf.Dataset(calibration.samples, transform),
        preset=nncf.QuantizationPreset.MIXED if options.preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE,
        subset_size=min(options.calibration_samples, len(calibration.samples)), **kwargs,
    )
    return quantized, {"tool": "nncf", "preset": options.preset, "model_type": options.model_type,
                       "overflow_fix": "every layer (7-bit weights: no int16 saturation on CPUs without VNNI)",
                       "excluded_nodes": list(options.exclude_nodes), "excluded_types": types,
                       "calibration": calibration.describe()}


def stable_names(ov_model) -> None:
    """Rename operations OpenVINO named from its process-wide counter (``Constant_31619``) after their
    place in the graph: the counter depends on what ran before, which would change the IR's bytes."""
    import re

    for index, op in enumerate(ov_model.get_ordered_ops()):
        if re.fullmatch(rf"{re.escape(op.get_type_name())}_\d+", op.get_friendly_name()):
            op.set_friendly_name(f"{op.get_type_name()}_{index}")


def save_stable(ov_model, xml: Path, compress_to_fp16: bool) -> None:
    """Save, then re-save with counter-named operations renamed: ``save_model`` itself creates the
    int8 weight constants (and their counter names), so renaming must happen on the saved IR."""
    import openvino as ov

    first = xml.parent / "unstable" / xml.name  # not xml itself: the read model maps this file's weights
    ov.save_model(ov_model, str(first), compress_to_fp16=compress_to_fp16)
    saved = ov.Core().read_model(str(first))
    stable_names(saved)
    ov.save_model(saved, str(xml), compress_to_fp16=False)


def count_int8(xml: Path) -> dict[str, int]:
    """FakeQuantize operations and 8-bit constants in a saved IR (read from its XML)."""
    import xml.etree.ElementTree as ElementTree

    fake_quantize = int8_constants = 0
    for layer in ElementTree.parse(xml).getroot().iter("layer"):
        if layer.get("type") == "FakeQuantize":
            fake_quantize += 1
        elif layer.get("type") == "Const":
            data = layer.find("data")
            if data is not None and data.get("element_type") in ("i8", "u8", "i4", "u4"):
                int8_constants += 1
    return {"fake_quantize": fake_quantize, "int8_constants": int8_constants}


def check(fp32_xml: Path, int8_xml: Path) -> dict[str, Any]:
    counts = count_int8(int8_xml)
    fp32_size = fp32_xml.stat().st_size + fp32_xml.with_suffix(".bin").stat().st_size
    int8_size = int8_xml.stat().st_size + int8_xml.with_suffix(".bin").stat().st_size
    if counts["fake_quantize"] == 0 or counts["int8_constants"] == 0:
        raise PassError(f"convert.openvino: refusing to ship an 'int8' IR in which nothing was quantized "
                        f"({counts['fake_quantize']} FakeQuantize, {counts['int8_constants']} int8 constants)",
                        "check exclude_nodes / exclude_op_types; NNCF found nothing it could quantize")
    if int8_size >= fp32_size:
        raise PassError(f"convert.openvino: refusing to ship an 'int8' IR that is not smaller than fp32 "
                        f"({int8_size} B >= {fp32_size} B)")
    return {**counts, "size_fp32": fp32_size, "size_int8": int8_size, "size_ratio": round(int8_size / fp32_size, 4)}
