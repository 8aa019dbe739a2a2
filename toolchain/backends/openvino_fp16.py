"""OpenVINO fp16 with an fp32 fallback: operations whose values leave the fp16 range are marked precise.

An fp16 OpenVINO variant stores its weights in fp16 and asks the plugin for f16 inference. A device
that computes in f16 (the GPU and NPU plugins, CPUs with AVX512-FP16/AMX-FP16, ARM) overflows where an
activation exceeds 65504, and the output turns to inf/NaN. OpenVINO's own mechanism keeps single
operations in fp32: the ``precise`` runtime attribute (``ov::disable_fp16_compression``), read by the
CPU and GPU plugins when they lower precision and by ``compress_to_fp16`` when it stores weights.

Which operations: the fp32 model runs on the samples with every operation's output exposed; an
operation whose output exceeds half the fp16 range (the margin covers inputs larger than the samples)
is kept in fp32, with the operations that read that output and the weights they read. The Python API
cannot create the typed attribute, so it is written into the IR (``<attribute name="precise"
version="0"/>``) and the IR read back, which makes it the real attribute; the final save compresses
every other weight. The manifest facts list ``ops_kept_fp32``.

The CPU plugin of a host without fp16 (``OPTIMIZATION_CAPABILITIES`` lacks ``FP16``, as here) runs an
f16 hint in f32, so parity on such a host cannot see an fp16 overflow: that is why the ranges are
measured up front for every fp16 variant rather than after a parity failure (as Core ML's interpreter
allows, ``coreml/fp16_fallback.py``). The facts record the precision the host really ran.

TFLite fp16 (``--recipe mobile-fp16``) has no per-operation counterpart: its float16 weights are
dequantized to fp32 when LiteRT loads them on the CPU (builtin kernels and XNNPACK compute in fp32, so
activations cannot overflow there, and parity in LiteRT on the build host judges exactly that path);
the GPU delegate computes in fp16 only when the app allows precision loss (``is_precision_loss_allowed`` /
``inference_priority`` other than MAX_PRECISION), a choice for the whole graph with no per-op exception.
The fallback that applies there is the app's: keep MAX_PRECISION on the GPU for a model whose
activations leave the fp16 range.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

FP16_MAX = 65504.0
LIMIT = FP16_MAX / 2  # the margin Core ML's fallback keeps too (coreml/fp16_fallback.py)
RANGE_SAMPLES = 8
_SKIP_TYPES = {"Parameter", "Constant", "Result"}


def peak_magnitudes(ov_model, samples: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Operation friendly name -> the largest finite |value| of its float outputs over ``samples`` (fp32 run)."""
    import openvino as ov

    probe = ov_model.clone()
    watched = [(op.get_friendly_name(), out) for op in probe.get_ordered_ops() if op.get_type_name() not in _SKIP_TYPES
               for out in op.outputs() if out.get_element_type().is_real()]
    results = probe.add_outputs([out for _, out in watched]) if watched else []
    compiled = ov.Core().compile_model(probe, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    names = [port.get_any_name() for port in probe.inputs]
    peaks: dict[str, float] = {}
    for sample in samples:
        values = compiled.create_infer_request().infer({n: sample[n] for n in names if n in sample})
        for (name, _), port in zip(watched, results):
            value = np.asarray(values[compiled.output(port.get_any_name())], dtype=np.float64)
            finite = np.abs(value[np.isfinite(value)])
            if finite.size:
                peaks[name] = max(peaks.get(name, 0.0), float(finite.max()))
    return peaks


def ops_to_keep(ov_model, peaks: dict[str, float], limit: float = LIMIT) -> list[str]:
    """The operations above ``limit``, the operations reading their outputs, and the weights either reads."""
    large = {name for name, peak in peaks.items() if peak > limit}
    keep = set(large)
    for op in ov_model.get_ordered_ops():
        if any(v.get_node().get_friendly_name() in large for v in op.input_values()):
            keep.add(op.get_friendly_name())
    for op in ov_model.get_ordered_ops():
        if op.get_friendly_name() in keep:
            keep |= {v.get_node().get_friendly_name() for v in op.input_values()
                     if v.get_node().get_type_name() == "Constant"}
    return sorted(n for n in keep if n)


def mark_precise(xml: Path, names: list[str]) -> int:
    """Add the ``precise`` runtime attribute to the IR's layers named ``names``; how many were marked."""
    tree = ET.parse(xml)
    wanted, marked = set(names), 0
    for layer in tree.getroot().iter("layer"):
        if layer.get("name") in wanted:
            rt_info = layer.find("rt_info")
            if rt_info is None:
                rt_info = ET.Element("rt_info")
                layer.insert(0, rt_info)
            ET.SubElement(rt_info, "attribute", {"name": "precise", "version": "0"})
            marked += 1
    tree.write(xml, encoding="utf-8", xml_declaration=True)
    return marked


def save_mixed(ov_model, xml: Path, samples: list[dict[str, np.ndarray]], compress_to_fp16: bool,
               log) -> dict[str, Any]:
    """Save ``ov_model`` with its overflowing operations marked precise; facts for the manifest."""
    import openvino as ov

    keep = ops_to_keep(ov_model, peak_magnitudes(ov_model, samples))
    if not keep:
        ov.save_model(ov_model, str(xml), compress_to_fp16=compress_to_fp16)
        return {"ops_kept_fp32": [], "fp16_range_checked_on": len(samples)}
    staged = xml.parent / "fp32-marked" / xml.name
    ov.save_model(ov_model, str(staged), compress_to_fp16=False)
    marked = mark_precise(staged, keep)
    ov.save_model(ov.Core().read_model(str(staged)), str(xml), compress_to_fp16=compress_to_fp16)
    log.info("[convert.openvino] fp16 overflows: %d operation(s) above %g kept in fp32 (precise)", marked, LIMIT)
    return {"ops_kept_fp32": keep, "fp16_range_checked_on": len(samples)}


def host_precision() -> str:
    """What an f16 hint really runs on this host's CPU plugin (f32 where the CPU has no fp16)."""
    import openvino as ov

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "f16" if "FP16" in capabilities else "f32 (this CPU has no fp16: OPTIMIZATION_CAPABILITIES " \
        f"{', '.join(capabilities)})"
