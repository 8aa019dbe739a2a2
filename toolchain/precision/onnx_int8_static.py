"""ONNX int8 weights and activations in QDQ form, calibrated (ONNX Runtime ``quantize_static``).

First ONNX Runtime's own pre-processing (``quant_pre_process``) with symbolic shape inference
skipped: the shared notes saw it fail on real models otherwise. Weights per channel by default;
the calibration method is MinMax, Entropy or Percentile; samples come from ``--calibration``
(toolchain/precision/calibration.py) or, without it, seeded random data, and the facts then carry the
"accuracy unproven" sentence to the manifest. Weights are int8 within [-64, 64] (``reduce_range``), so
ONNX Runtime's fused integer kernels give the same results on AVX2, AVX-512, VNNI and ARM
(``precision/int8_portability.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..onnxlib.model import load_onnx, save_onnx
from .calibration import CALIBRATION_SAMPLES
from .quantization import (CALIBRATION_METHODS, check_int8, ensure_node_names, ort_reader,
                            quiet_quantizer, resolve_exclusions)


@dataclass(frozen=True)
class Options:
    calibration_method: str = "MinMax"     # "MinMax" | "Entropy" | "Percentile"
    calibration_samples: int = CALIBRATION_SAMPLES
    per_channel: bool = True
    activation_type: str = "int8"          # "int8" | "uint8"
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()

    def __post_init__(self):
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ValueError(f"option 'calibration_method' is '{self.calibration_method}'; "
                             f"known values: {', '.join(CALIBRATION_METHODS)}")
        if self.activation_type not in ("int8", "uint8"):
            raise ValueError(f"option 'activation_type' is '{self.activation_type}'; known values: int8, uint8")
        if self.calibration_samples < 1:
            raise ValueError("option 'calibration_samples' must be at least 1")


PER_CHANNEL_OPSET = 13  # DequantizeLinear's ``axis`` (per-channel scales) exists from opset 13


def preprocess(src: Path, dst: Path, per_channel: bool) -> tuple[Path, dict[str, Any]]:
    """ONNX Runtime's quantization pre-processing, without symbolic shape inference; unnamed nodes named.

    Per-channel QDQ needs opset 13: older models are upgraded first (ONNX Runtime's quantizer would
    otherwise write an ``axis`` attribute that opset 11 does not know, and the model would not load).
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    notes: dict[str, Any] = {}
    proto = load_onnx(src)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), PER_CHANNEL_OPSET)
    if per_channel and opset < PER_CHANNEL_OPSET:
        proto = onnx.version_converter.convert_version(proto, PER_CHANNEL_OPSET)
        notes["opset_upgraded"] = f"{opset} -> {PER_CHANNEL_OPSET}"
    upgraded = save_onnx(proto, dst.with_name("upgraded.onnx"))
    quant_pre_process(str(upgraded), str(dst), skip_symbolic_shape=True)
    proto = load_onnx(dst)
    ensure_node_names(proto)
    return save_onnx(proto, dst), notes


def quantize_static_model(src: Path, dst: Path, options: Options, calibration, work: Path) -> dict[str, Any]:
    """Write the QDQ int8 model of ``src`` to ``dst``, calibrated on ``calibration`` (a CalibrationSet)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    prepared, notes = preprocess(src, work / "preprocessed.onnx", options.per_channel)
    excluded = resolve_exclusions(load_onnx(prepared, load_external_data=False), options.exclude_nodes,
                                  options.exclude_op_types, "quantize.static")
    activation = QuantType.QInt8 if options.activation_type == "int8" else QuantType.QUInt8
    with quiet_quantizer():
        quantize_static(
            str(prepared), str(dst), ort_reader(calibration.samples[:options.calibration_samples]),
            quant_format=QuantFormat.QDQ, per_channel=options.per_channel, activation_type=activation,
            weight_type=QuantType.QInt8, reduce_range=True, nodes_to_exclude=excluded or None,
            calibrate_method=getattr(CalibrationMethod, options.calibration_method),
        )
    facts = check_int8(Path(src), dst, "quantize.static")
    return {"mode": "static", "format": "QDQ", "calibration_method": options.calibration_method,
            "per_channel": options.per_channel, "activation_type": options.activation_type,
            "weights": "int8, 7-bit range [-64, 64]",
            "excluded_nodes": excluded, "calibration": calibration.describe(), **notes, **facts}
