"""int8 forms section of ``make bench``: why stackc's int8 weights are 7-bit (issue 13).

For each fixture, ONNX Runtime's quantizer writes three weight forms: full-range int8 (what stackc
shipped before), int8 within [-64, 64] (``reduce_range``, what it ships now) and uint8 (u8u8
kernels). Each is run twice: by ONNX Runtime on this host, and by exact arithmetic: onnx's numpy
reference for dynamic int8 (int32 accumulation, what VNNI and ARM kernels compute) and the unfused
QDQ graph for static int8. The gap between the two is what this host's kernels lose to int16
saturation: zero on a VNNI host for every form, zero on every host for a portable form. Cosine is
against fp32 on the same seeded inputs; size is the file's bytes.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "tests" / "fixtures" / "models"
CASES = (("transformer_tiny", "dynamic"), ("resnet_tiny", "static"),
         ("mobilenet_tiny", "static"), ("digits_cnn", "static"))
FORMS = {"int8 full range": ("QInt8", False), "int8 7-bit (stackc)": ("QInt8", True), "uint8": ("QUInt8", False)}
SAMPLES = 8


def _feeds(path: Path) -> list[dict[str, np.ndarray]]:
    from toolchain.onnxlib.model import graph_inputs, load_onnx
    from toolchain.parity.samples import make_inputs

    specs = graph_inputs(load_onnx(path, load_external_data=False))
    shapes = {s.name: tuple(d if isinstance(d, int) and d > 0 else (16 if i else 2) for i, d in enumerate(s.shape))
              for s in specs}
    return [make_inputs(specs, shapes, seed=seed) for seed in range(SAMPLES)]


def _session(path: Path, fused: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not fused:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feed: session.run(None, feed)


def _exact(path: Path, mode: str):
    if mode == "static":
        return _session(path, fused=False)
    import onnx
    from onnx.reference import ReferenceEvaluator

    proto = onnx.load(str(path))
    for opset in proto.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, 21)
    evaluator = ReferenceEvaluator(proto)
    return lambda feed: evaluator.run(None, feed)


def _quantize(src: Path, dst: Path, mode: str, weight: str, reduce_range: bool, feeds) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    from toolchain.precision.onnx_int8_static import preprocess
    from toolchain.precision.quantization import ort_reader, quiet_quantizer

    with quiet_quantizer():
        if mode == "dynamic":
            quantize_dynamic(str(src), str(dst), weight_type=getattr(QuantType, weight), reduce_range=reduce_range,
                             op_types_to_quantize=["MatMul", "Gemm", "Gather"])
        else:
            prepared, _ = preprocess(src, dst.with_name("pre-" + dst.name), per_channel=True)
            activation = QuantType.QUInt8 if weight == "QUInt8" else QuantType.QInt8
            quantize_static(str(prepared), str(dst), ort_reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=reduce_range, activation_type=activation, weight_type=getattr(QuantType, weight))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def measure(folder: Path) -> dict:
    from toolchain.precision.int8_portability import describe
    import onnx

    results = {}
    for name, mode in CASES:
        src = MODELS / f"{name}.onnx"
        feeds = _feeds(src)
        reference = [_session(src)(f) for f in feeds]
        rows = {}
        for form, (weight, reduce_range) in FORMS.items():
            dst = folder / f"{name}-{weight}-{reduce_range}.onnx"
            _quantize(src, dst, mode, weight, reduce_range, feeds)
            here, exact = _session(dst), _exact(dst, mode)
            cos_here, cos_exact, gap = 1.0, 1.0, 0.0
            for feed, ref in zip(feeds, reference):
                got, want = here(feed), exact(feed)
                for r, g, w in zip(ref, got, want):
                    cos_here, cos_exact = min(cos_here, _cosine(r, g)), min(cos_exact, _cosine(r, w))
                    gap = max(gap, float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-12)))
            rows[form] = {"size": dst.stat().st_size, "cosine_here": round(cos_here, 5),
                          "cosine_exact": round(cos_exact, 5), "saturation_gap": round(gap, 5),
                          "cpu_independent": describe(onnx.load(str(dst))).get("cpu_independent")}
        results[name] = {"mode": mode, "fp32_size": src.stat().st_size, "forms": rows}
    return results


def print_forms(results: dict) -> None:
    from toolchain.parity.host_cpu import describe

    print(f"int8 forms: worst cosine vs fp32 over {SAMPLES} samples, here and in exact integer arithmetic")
    print(f"  host: {describe()}")
    print(f"  {'model':<17} {'mode':<8} {'form':<20} {'size':>8} {'cos here':>9} {'cos exact':>9} {'gap':>8}  portable")
    for name, entry in results.items():
        for form, row in entry["forms"].items():
            print(f"  {name:<17} {entry['mode']:<8} {form:<20} {row['size']:>8} {row['cosine_here']:>9.5f} "
                  f"{row['cosine_exact']:>9.5f} {row['saturation_gap']:>8.4f}  {row['cpu_independent']}")


def main(out: Path = REPO / "out" / "bench") -> dict:
    with tempfile.TemporaryDirectory(prefix="stackc-int8-forms-") as tmp:
        results = measure(Path(tmp))
    from toolchain.parity.host_cpu import cpu_record

    results = {"host": cpu_record(), "models": results}
    print_forms(results["models"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "int8_forms.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written: {out / 'int8_forms.json'}")
    return results


if __name__ == "__main__":
    main()
