"""The baseline stackc is measured against: each world's conversions by direct library calls.

One process, one conversion after another, the same artifacts with the same options as the
backends in toolchain/backends/ (fp32 OpenVINO weights, basic-optimised ORT format, onnx2tf with
onnxsim off and builtin-ops TFLite, the Core ML frontend's program through ``ct.convert``), from
the same static-shaped, onnxslim-simplified model, then one parity run of each artifact in its
runtime against the source's output in ONNX Runtime on one sample (issue 23's yardstick: "the raw
conversions plus one parity run of each"; Core ML has no runtime on Linux, so by hand it gets none).
No checks, no packaging: what a user scripting the converters by hand would run. ``--only FORMAT`` converts one format alone, so
each converter's own peak memory can be measured in its own process.

    python -m benchmarks.raw MODEL WORLD OUT_DIR [--only FORMAT] [--shape NAME=DIMS ...]

Prints one JSON line: {"formats": [...], "seconds": {step: s}} (step: onnxslim, each variant's conversion,
``parity.<variant>``; ``--no-parity`` leaves the parity runs out).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time
import tomllib
from pathlib import Path

import numpy as np

from toolchain.precision.calibration import CALIBRATION_SAMPLES  # by hand calibrates on as many samples as stackc

REPO = Path(__file__).resolve().parent.parent
ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"  # onnx2tf downloads it when missing


def world_variants(world: str) -> tuple[dict, list[dict]]:
    data = tomllib.loads((REPO / "targets" / f"{world}.toml").read_text())
    return data["shapes"], data["variants"]


def slim(model_path: Path, shapes: dict, out: Path, given: dict | None = None) -> Path:
    """Fix the dims given (``--shape``) and the world's dynamic dims (static worlds), then onnxslim:
    the model every converter gets."""
    import onnx
    import onnxslim

    proto = onnx.load(str(model_path))
    for value in proto.graph.input:
        if value.name in (given or {}):
            for dim, size in zip(value.type.tensor_type.shape.dim, given[value.name]):
                dim.dim_value = size
    if shapes.get("static"):
        for value in proto.graph.input:
            for dim in value.type.tensor_type.shape.dim:
                if not dim.HasField("dim_value"):
                    dim.dim_value = int(shapes.get("dims", {}).get(dim.dim_param, shapes.get("default_dim", 1)))
    slimmed = onnxslim.slim(proto)
    path = out / "model.onnx"
    onnx.save_model(slimmed, str(path))
    return path


def to_ort(onnx_path: Path, out: Path) -> Path:
    import onnxruntime as ort

    path = out / "model.ort"
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(path)
    so.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
    return path


def to_openvino(onnx_path: Path, out: Path, precision: str) -> Path:
    import openvino as ov

    path = out / "openvino" / "model.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(path), compress_to_fp16=(precision == "fp16"))
    return path


def to_tflite(onnx_path: Path, out: Path, precision: str, seed: int = 0) -> Path:
    import onnx2tf
    import tensorflow as tf

    work = out / f"tflite-{precision}"
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / ONNX2TF_SAMPLE, np.random.default_rng(seed).random((20, 128, 128, 3), dtype=np.float32))
    previous = os.getcwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            keras = onnx2tf.convert(input_onnx_file_path=str(onnx_path), output_folder_path=str(work / "saved_model"),
                                    not_use_onnxsim=True, disable_model_save=True, non_verbose=True, verbosity="error",
                                    **_pseudo_arguments(onnx_path))
    finally:
        os.chdir(previous)
    specs = [tf.TensorSpec(t.shape, t.dtype, name=f"input_{i}") for i, t in enumerate(keras.inputs)]

    @tf.function(input_signature=specs)
    def serve(*args):
        outputs = keras(list(args))
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return {f"output_{i}": value for i, value in enumerate(outputs)}

    holder = tf.Module()  # the variables, not the Keras model: saving its config costs 19 s on a 28 MB CNN
    holder.model_variables = list(keras.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        rng = np.random.default_rng(seed)
        samples = [[rng.random(tuple(t.shape), dtype=np.float32) if t.dtype.is_floating
                    else rng.integers(0, 2, tuple(t.shape)).astype(t.dtype.as_numpy_dtype) for t in keras.inputs]
                   for _ in range(CALIBRATION_SAMPLES)]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    path = work / "model.tflite"
    path.write_bytes(converter.convert())
    return path


def _pseudo_arguments(onnx_path: Path) -> dict:
    """What a user who knows onnx2tf asks at once for ops LiteRT's builtins lack (Erf, ...): its pseudo ops
    (stackc's route ``onnx2tf+pseudo-ops``; stackc reaches it only after plain onnx2tf failed)."""
    import onnx

    from toolchain.backends.tflite.routes import PSEUDO_OPS

    present = {n.op_type.lower() for n in onnx.load(str(onnx_path), load_external_data=False).graph.node}
    pseudo = [op for op in PSEUDO_OPS if op in present]
    return {"replace_to_pseudo_operators": pseudo, "enable_rnn_unroll": True} if pseudo else {}


def to_coreml(onnx_path: Path, out: Path, precision: str, options: dict) -> Path:
    import onnx

    from toolchain.backends.coreml._ct import coremltools
    from toolchain.backends.coreml.frontend.program import build_program

    ct = coremltools()  # as stackc imports it: without probing torch/TensorFlow (3 s), a fair baseline

    target = getattr(ct.target, options.get("minimum_deployment_target", "iOS16"))
    program, _ = build_program(onnx.load(str(onnx_path)), target)
    mlmodel = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=target, skip_model_load=True,
                         compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32)
    path = out / f"coreml-{precision}" / "model.mlpackage"
    mlmodel.save(str(path))
    return path


def one_sample(onnx_path: Path) -> dict[str, np.ndarray]:
    """A random sample for the model's (static) inputs: floats in [0, 1), integers 0 (always a valid id)."""
    import onnx
    from onnx import helper

    rng = np.random.default_rng(0)
    sample = {}
    for value in onnx.load(str(onnx_path), load_external_data=False).graph.input:
        tensor = value.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        shape = tuple(d.dim_value or 1 for d in tensor.shape.dim)
        sample[value.name] = rng.random(shape).astype(dtype) if dtype.kind == "f" else np.zeros(shape, dtype)
    return sample


def run_artifact(fmt: str, path: Path, sample: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The artifact's outputs on ``sample`` in its runtime (inputs in order; NHWC where LiteRT wants it)."""
    feeds = list(sample.values())
    if fmt in ("onnx", "ort"):
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, dict(zip([i.name for i in session.get_inputs()], feeds)))
    if fmt == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return list(compiled(feeds).values())
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        for detail, value in zip(interpreter.get_input_details(), feeds):  # by index: no signature needed
            if value.ndim == 4 and tuple(detail["shape"]) != value.shape:
                value = value.transpose(0, 2, 3, 1)
            if detail["dtype"] == np.int8:
                scale, zero = detail["quantization"]
                value = np.clip(np.round(value / scale) + zero, -128, 127)
            interpreter.set_tensor(detail["index"], value.astype(detail["dtype"]).reshape(detail["shape"]))
        interpreter.invoke()
        return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    return []


def parity_run(fmt: str, path: Path, sample: dict[str, np.ndarray], reference: list[np.ndarray]) -> float | None:
    """One parity run: the artifact's largest absolute difference from the source, where sizes allow comparing."""
    actual = run_artifact(fmt, path, sample)
    diffs = [float(np.max(np.abs(a.astype(np.float64).ravel() - r.astype(np.float64).ravel())))
             for a, r in zip(actual, reference) if a.size == r.size and a.size]
    return max(diffs) if diffs else None


def convert_world(model: Path, world: str, out: Path, only: str | None = None, given: dict | None = None,
                  parity: bool = True) -> dict:
    shapes, variants = world_variants(world)
    chosen = [v for v in variants if only in (None, v["format"])]
    if not chosen:
        raise SystemExit(f"world {world} has no '{only}' variant")
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    onnx_path = slim(model, shapes, out, given)
    seconds["onnxslim"] = time.perf_counter() - started
    sample = reference = None
    if parity:
        import onnxruntime as ort

        started = time.perf_counter()
        sample = one_sample(onnx_path)
        reference = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, sample)
        seconds["reference"] = time.perf_counter() - started
    for variant in chosen:
        fmt, precision = variant["format"], variant["precision"]
        started = time.perf_counter()
        path = onnx_path  # "onnx": the slimmed model itself is the artifact
        if fmt == "ort":
            path = to_ort(onnx_path, out)
        elif fmt == "openvino":
            path = to_openvino(onnx_path, out, precision)
        elif fmt == "tflite":
            path = to_tflite(onnx_path, out, precision)
        elif fmt == "coreml":
            path = to_coreml(onnx_path, out, precision, variant.get("options", {}))
        seconds[variant["name"]] = time.perf_counter() - started
        if parity and fmt != "coreml":
            started = time.perf_counter()
            parity_run(fmt, path, sample, reference)
            seconds[f"parity.{variant['name']}"] = time.perf_counter() - started
    return {"formats": [v["format"] for v in chosen], "seconds": {k: round(v, 3) for k, v in seconds.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.raw", description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("world")
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", help="convert only this format (onnx, ort, openvino, tflite, coreml)")
    parser.add_argument("--shape", action="append", default=[], help="NAME=DIMS, as stackc's --shape (repeatable)")
    parser.add_argument("--no-parity", action="store_true", help="conversions only, no parity run of each artifact")
    args = parser.parse_args(argv)
    given = {name: [int(d) for d in dims.split(",")] for name, _, dims in (s.partition("=") for s in args.shape)}
    print(json.dumps(convert_world(args.model, args.world, args.out, args.only, given, not args.no_parity)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
