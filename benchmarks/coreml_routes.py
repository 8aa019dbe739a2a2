"""The two Core ML routes on the test architectures: stackc's ONNX -> MIL frontend against
ONNX -> onnx2tf SavedModel -> coremltools' TensorFlow frontend (the evidence for issue 5's closing note).

``python -m benchmarks.coreml_routes [MODEL ...] [--timeout SECONDS]`` (offline). Each fixture in
tests/fixtures/models/index.json, plus the exporter-style backward LSTM, is prepared as ``stackc build``
would (``stackc prepare --target edge-mobile``), then converted by each route in its own child process
(TensorFlow can crash or hang) with fp16 compute and an iOS 16 floor, as the shipped variant does.
Each package is run through stackc's MIL reference interpreter and compared with the prepared model in
onnxruntime under the edge-mobile Core ML variant's parity policy.

SavedModel route: onnx2tf exactly as the TFLite backend runs it (a private copy with positional I/O
names, its rewrites, its onnx2tf settings), trying the TFLite backend's onnx2tf routes in the same
order until one gives a package that passes parity (the fallback "parity must still approve"); each
is saved with a ``serving_default`` signature, then ``ct.convert(saved_model_dir, source="tensorflow",
convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16)``. Its inputs are fed in
onnx2tf's axis order; each output's axis order is found from its shape, or on a second (probe)
sample when the shape cannot tell, as the TFLite backend does. Its time is the sum over the onnx2tf
routes it tried.

Times are wall-clock seconds of each child from start to saved package, imports included
(TensorFlow's import is part of that route's cost); peak MB is the child's peak RSS.

Not part of the test suite (minutes of TensorFlow). ``benchmarks/run.py coreml_routes`` or
``STACKC_BENCH_COREML_ROUTES=1 make bench`` includes it.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "models"
OURS, SAVEDMODEL = "onnx->MIL", "onnx2tf->SavedModel->ct"
TIMEOUT = 900.0
OUTPUT_KEY = "output_{:03d}"  # zero-padded: TF flattens a dict of outputs in key order


# -- parent: models, children, parity, table ----------------------------------------------------


def _models(folder: Path, only: list[str]) -> dict[str, Path]:
    index = json.loads((FIXTURES / "index.json").read_text(encoding="utf-8"))
    models = {m["file"].removesuffix(".onnx"): FIXTURES / m["file"] for m in index["models"]}
    models["reverse_lstm"] = _reverse_lstm(folder / "reverse_lstm.onnx")
    unknown = [name for name in only if name not in models]
    if unknown:
        raise SystemExit(f"unknown model '{unknown[0]}' (known: {', '.join(models)})")
    return {name: path for name, path in models.items() if not only or name in only}


def _reverse_lstm(path: Path) -> Path:
    """tests/backends/test_tflite.py's ``make_reverse_lstm``: one builder for the tests and this benchmark."""
    import importlib.util

    sys.path.insert(0, str(REPO / "tests"))  # its ``from conftest import ...``
    spec = importlib.util.spec_from_file_location("_tflite_models", REPO / "tests" / "backends" / "test_tflite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_reverse_lstm(path)


def _prepare(source: Path, dest: Path) -> Path:
    from .measure import stackc_command

    done = subprocess.run([*stackc_command(), "prepare", str(source), "-o", str(dest), "--target", "edge-mobile",
                           "--quiet"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"stackc prepare failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return dest


def _child(route: str, canonical: Path, work: Path, timeout: float) -> dict[str, Any]:
    """Convert in a child process; its result.json, or why there is none."""
    work.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "benchmarks.coreml_routes", "--child", route, str(canonical), str(work)]
    started = time.perf_counter()  # the child's own clock, if it reports one, is the figure used
    with open(work / "child.log", "wb") as log:
        try:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, cwd=REPO)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s", "seconds": time.perf_counter() - started}
    result_file = work / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text(encoding="utf-8"))
    how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
    tail = (work / "child.log").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return {"error": f"child crashed ({how}): {tail[0][:200]}", "seconds": time.perf_counter() - started}


def _run_package(result: dict[str, Any], samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feed ONNX-named samples to the package through the reference interpreter; raw Core ML outputs by name."""
    from toolchain.backends.coreml.interpreter import Program

    feeds = {}
    for entry in result["inputs"]:
        value = np.ascontiguousarray(np.asarray(samples[entry["onnx"]]).transpose(entry["perm"]))
        feeds[entry["coreml"]] = value.astype(np.int32) if np.issubdtype(value.dtype, np.integer) else value
    raw = Program(Path(result["package"])).run(feeds)
    return {k: np.asarray(v).astype(np.float32) if np.issubdtype(np.asarray(v).dtype, np.floating) else np.asarray(v)
            for k, v in raw.items()}


def _outputs_in_onnx_order(outputs, raw, reference_shapes, probe_raw, probe_reference, identity: bool):
    """Raw outputs back to ONNX names and axis orders (identity for our route, found for onnx2tf's)."""
    from toolchain.backends.tflite import layout
    from toolchain.backends.tflite.routes import resolve_outputs

    specs = [{"name": e["onnx"], "key": e["key"], "onnx_shape": list(reference_shapes[e["onnx"]])} for e in outputs]
    if identity:
        for spec in specs:
            spec["perm"] = list(range(len(spec["onnx_shape"])))
    else:
        resolve_outputs(probe_raw, specs, probe_reference)
    return {s["name"]: raw[s["key"]].transpose(layout.inverse(s["perm"])) for s in specs}


def samples_for(canonical: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The parity samples (seed 0) and the probe samples (seed 1) that decide ambiguous output layouts."""
    from toolchain.onnxlib.model import graph_inputs, load_onnx
    from toolchain.parity.samples import make_inputs

    specs = graph_inputs(load_onnx(canonical))
    shapes = {s.name: tuple(s.shape) for s in specs}
    return make_inputs(specs, shapes, 0), make_inputs(specs, shapes, 1)


def _parity(result, canonical: Path, policy, runtime: str = "package") -> tuple[str, float | None]:
    """Judge the Core ML package (through the reference interpreter) or, with ``runtime="tensorflow"``,
    the SavedModel's own outputs that its child recorded, against the prepared model in onnxruntime."""
    from toolchain.artifact import ModelArtifact
    from toolchain.backends.coreml.interpreter import UnsupportedMILOp
    from toolchain.backends.onnx_runtime import run as run_onnx
    from toolchain.parity.compare import compare

    samples, probe = samples_for(canonical)
    prepared = ModelArtifact(canonical, "onnx")
    reference, probe_reference = run_onnx(prepared, samples), run_onnx(prepared, probe)
    try:
        if runtime == "tensorflow":
            outputs = [{"onnx": e["onnx"], "key": str(i)} for i, e in enumerate(result["outputs"])]
            with np.load(result["tf_outputs"]) as recorded:
                raw = {str(i): recorded[f"samples_{i}"] for i in range(len(outputs))}
                probe_raw = {str(i): recorded[f"probe_{i}"] for i in range(len(outputs))}
        else:
            outputs = [{"onnx": e["onnx"], "key": e["coreml"]} for e in result["outputs"]]
            raw, probe_raw = _run_package(result, samples), _run_package(result, probe)
        actual = _outputs_in_onnx_order(outputs, raw, {k: v.shape for k, v in reference.items()}, probe_raw,
                                        probe_reference, identity=result["route"] == OURS)
    except UnsupportedMILOp as e:
        return f"n/a: interpreter lacks MIL op {e}", None
    except Exception as e:  # a layout that no axis order explains, a shape mismatch
        return f"fail: {type(e).__name__}: {' '.join(str(e).split())[:160]}", None
    outcome = compare(result["route"], reference, actual, policy, runtime)
    worst = max((o.max_abs for o in outcome.outputs if o.max_abs is not None), default=None)
    if outcome.passed:
        return "pass", worst
    failing = "; ".join(f"{o.name}: {o.reason}" for o in outcome.outputs if not o.passed)
    return f"fail: {failing[:160]}", worst


def _savedmodel_route(canonical: Path, work: Path, timeout: float, policy) -> dict[str, Any]:
    """The TFLite backend's onnx2tf routes in its order; the first whose package passes parity wins."""
    from toolchain.backends.tflite.routes import ROUTES
    from toolchain.onnxlib.model import load_onnx

    proto = load_onnx(canonical)
    tried, seconds, peak, best = [], 0.0, 0.0, None
    for tf_route in ROUTES:
        if tf_route.applies(proto):
            continue
        result = _child(f"{SAVEDMODEL}:{tf_route.name}", canonical, work / tf_route.name.replace("+", "_"), timeout)
        seconds += result.get("seconds", 0.0)
        peak = max(peak, result.get("peak_mb") or 0.0)
        if "error" in result:
            tried.append(f"{tf_route.name}: {result['error']}")
            continue
        parity, worst = _parity(result, canonical, policy)
        tf_parity, tf_worst = _parity(result, canonical, policy, runtime="tensorflow")
        tried.append(f"{tf_route.name}: converted, Core ML package parity {parity}; SavedModel in TensorFlow "
                     f"parity {tf_parity}" + (f" (max abs {tf_worst:.2g})" if tf_worst is not None else ""))
        attempt = {**result, "parity": parity, "max_abs": worst, "onnx2tf_route": tf_route.name,
                   "savedmodel_parity": tf_parity, "savedmodel_max_abs": tf_worst}
        if best is None or _rank(attempt) > _rank(best):
            best = attempt
        if parity == "pass":
            break
    outcome = best or {"error": tried[-1] if tried else "no onnx2tf route applies"}
    return {**outcome, "seconds": seconds, "peak_mb": peak or None, "tried": tried}


def _rank(attempt: dict[str, Any]) -> int:
    """Which converted attempt to report: the package passed > only its SavedModel could be judged and passed > other."""
    if attempt["parity"] == "pass":
        return 2
    return int(attempt["parity"].startswith("n/a") and attempt["savedmodel_parity"] == "pass")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``argv``: model names to limit the run to, and ``--timeout SECONDS``; none from benchmarks/run.py."""
    from toolchain.targets import load_target

    argv = list(argv or ())
    timeout = TIMEOUT
    if "--timeout" in argv:
        at = argv.index("--timeout")
        timeout = float(argv[at + 1])
        del argv[at:at + 2]
    policy = next(v for v in load_target("edge-mobile").variants if v.format == "coreml").parity
    rows: list[dict[str, Any]] = []
    print(f"Core ML routes: fp16 compute, iOS 16, parity under edge-mobile's Core ML policy "
          f"(max_abs {policy.max_abs:g} + max_rel {policy.max_rel:g}, cosine >= {policy.min_cosine})")
    print("parity: the Core ML package through stackc's MIL reference interpreter; SavedModel: onnx2tf's "
          "SavedModel itself in TensorFlow (same samples, same policy)")
    header = (f"{'model':<16} {'route':<23} {'converted':<44} {'parity (max abs)':<17} {'SavedModel in TF':<17} "
              f"{'time s':>7} {'peak MB':>8}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="stackc-coreml-routes-") as tmp:
        folder = Path(tmp)
        for name, source in _models(folder, argv).items():
            canonical = _prepare(source, folder / f"{name}.canonical.onnx")
            for route in (OURS, SAVEDMODEL):
                work = folder / name / ("mil" if route == OURS else "savedmodel")
                if route == OURS:
                    result = _child(OURS, canonical, work, timeout)
                    if "error" not in result:
                        result["parity"], result["max_abs"] = _parity(result, canonical, policy)
                else:
                    result = _savedmodel_route(canonical, work, timeout, policy)
                row = {"model": name, "route": route, "converted": "error" not in result,
                       "error": result.get("error"), "parity": result.get("parity"), "max_abs": result.get("max_abs"),
                       "seconds": round(result.get("seconds", 0.0), 1), "peak_mb": result.get("peak_mb"),
                       "onnx2tf_route": result.get("onnx2tf_route"), "tried": result.get("tried"),
                       "mil_ops": result.get("mil_ops"), "savedmodel_parity": result.get("savedmodel_parity"),
                       "savedmodel_max_abs": result.get("savedmodel_max_abs")}
                rows.append(row)
                _print_row(row)
    _print_details(rows)
    summary = {route: {"converted": sum(r["converted"] for r in rows if r["route"] == route),
                       "parity_passed": sum(r["parity"] == "pass" for r in rows if r["route"] == route),
                       "models": sum(r["route"] == route for r in rows)} for route in (OURS, SAVEDMODEL)}
    print()
    for route, counts in summary.items():
        print(f"{route:<23} converted {counts['converted']}/{counts['models']}, "
              f"parity passed {counts['parity_passed']}/{counts['models']}")
    return {"rows": rows, "summary": summary}


def _print_row(row: dict[str, Any]) -> None:
    converted = "yes" if row["converted"] else f"no ({row['error']})"
    if row["converted"] and row["onnx2tf_route"]:
        converted = f"yes (onnx2tf route {row['onnx2tf_route']})"
    parity = _verdict(row["parity"], row["max_abs"])
    savedmodel = _verdict(row["savedmodel_parity"], row["savedmodel_max_abs"])
    peak = "-" if row["peak_mb"] is None else f"{row['peak_mb']:.0f}"
    print(f"{row['model']:<16} {row['route']:<23} {converted[:44]:<44} {parity:<17} {savedmodel:<17} "
          f"{row['seconds']:>7.1f} {peak:>8}", flush=True)


def _verdict(parity: str | None, worst: float | None) -> str:
    if parity is None:
        return "-"
    return parity.split(":")[0] + (f" ({worst:.3g})" if worst is not None else "")


def _print_details(rows: list[dict[str, Any]]) -> None:
    """The full reasons the table cuts short: errors, parity failures, every onnx2tf route tried."""
    print()
    for row in rows:
        lines = [] if row["parity"] in (None, "pass") else [f"parity: {row['parity']}"]
        if row["error"] and not row["tried"]:
            lines.append(f"error: {row['error']}")
        lines += [f"tried {t}" for t in row["tried"] or []]
        for line in lines:
            print(f"{row['model']:<16} {row['route']:<23} {line}")


# -- children: one conversion each, result.json in their folder ---------------------------------


def _convert_ours(canonical: Path, work: Path) -> dict[str, Any]:
    from toolchain.artifact import ModelArtifact
    from toolchain.onnxlib.model import graph_inputs, load_onnx
    from toolchain.engine.context import PassContext
    from toolchain.plugins import get_pass

    artifact = get_pass("convert.coreml")({}).run(ModelArtifact(canonical, "onnx"),
                                                   PassContext(work_dir=work / "pass", isolate=False))
    facts = artifact.facts["convert.coreml"]
    ranks = {s.name: len(s.shape) for s in graph_inputs(load_onnx(canonical))}
    return {"package": str(artifact.path), "mil_ops": facts["mil_ops"],
            "inputs": [{"onnx": o, "coreml": c, "perm": list(range(ranks[o]))} for o, c in facts["inputs"].items()],
            "outputs": [{"onnx": o, "coreml": c} for o, c in facts["outputs"].items()]}


def _convert_savedmodel(canonical: Path, work: Path, tf_route: str) -> dict[str, Any]:
    """onnx2tf as the TFLite backend's route ``tf_route`` runs it (convert.py ``_attempt``), then coremltools."""
    import onnx

    from toolchain.artifact import ModelArtifact
    from toolchain.backends.coreml._ct import coremltools
    from toolchain.backends.tflite import onnx2tf_route, rewrites
    from toolchain.backends.tflite.routes import arguments_for, selected
    from toolchain.onnxlib.model import graph_inputs, graph_outputs, load_onnx
    from toolchain.engine.context import PassContext
    from toolchain.plugins import get_pass

    route = selected((tf_route,))[0]
    proto = load_onnx(canonical)
    in_specs, out_specs = graph_inputs(proto), graph_outputs(proto)
    detected = get_pass("layout.detect")({}).run(ModelArtifact(canonical, "onnx"), PassContext(work_dir=work / "layout"))
    channels_last = set(detected.facts.get("layout.detect", {}).get("channels_last", []))
    channel_last = tuple(f"input_{i}" for i, s in enumerate(in_specs) if s.name in channels_last)
    copy = onnx.ModelProto.FromString(proto.SerializeToString())
    rewrites.apply(copy, route.rewrites)
    renamed = work / "model.onnx"
    onnx2tf_route.safe_copy(copy, renamed)
    run = arguments_for(route, proto, channel_last)
    keras = onnx2tf_route.convert(renamed, work / "onnx2tf", run, seed=0)
    saved_model = _save_saved_model(keras, len(out_specs), work / "saved_model")
    tf_outputs = _record_savedmodel_outputs(saved_model, canonical, in_specs, run, work / "tf_outputs.npz")
    ct = coremltools()
    mlmodel = ct.convert(str(saved_model), source="tensorflow", convert_to="mlprogram",
                         minimum_deployment_target=ct.target.iOS16, skip_model_load=True)
    package = work / "model.mlpackage"
    mlmodel.save(str(package))
    description = mlmodel.get_spec().description
    declared_in = [f.name for f in description.input]
    inputs = []
    for i, spec in enumerate(in_specs):
        key = f"input_{i}"
        coreml_name = key if key in declared_in else declared_in[i]
        inputs.append({"onnx": spec.name, "coreml": coreml_name, "perm": list(run.perm_for(key, len(spec.shape)))})
    outputs = [{"onnx": spec.name, "coreml": feature.name} for spec, feature in zip(out_specs, description.output)]
    if len(description.output) != len(out_specs):
        raise RuntimeError(f"the package declares {len(description.output)} outputs, the ONNX model {len(out_specs)}")
    spec = ct.utils.load_spec(str(package))
    main = spec.mlProgram.functions["main"]
    ops = sorted({op.type for op in main.block_specializations[main.opset].operations})
    return {"package": str(package), "inputs": inputs, "outputs": outputs, "mil_ops": ops,
            "tf_outputs": str(tf_outputs)}


def _record_savedmodel_outputs(saved_model: Path, canonical: Path, in_specs, run, dest: Path) -> Path:
    """The SavedModel's own outputs (``serving_default`` in TensorFlow) on the parity and probe samples,
    so the table can tell onnx2tf's errors from coremltools' ones."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    recorded = {}
    for which, samples in zip(("samples", "probe"), samples_for(canonical)):
        feeds = {}
        for i, spec in enumerate(in_specs):
            key = f"input_{i}"
            value = np.ascontiguousarray(samples[spec.name].transpose(run.perm_for(key, len(spec.shape))))
            feeds[key] = tf.constant(value, dtype=serve.structured_input_signature[1][key].dtype)
        for key, value in serve(**feeds).items():
            recorded[f"{which}_{int(key.rsplit('_', 1)[1])}"] = np.asarray(value)
    np.savez(dest, **recorded)
    return dest


def _save_saved_model(keras, output_count: int, folder: Path) -> Path:
    """onnx2tf's Keras model as a SavedModel with one ``serving_default`` signature, outputs in ONNX order."""
    import tensorflow as tf

    from toolchain.backends.tflite.export import variable_holder

    specs = [tf.TensorSpec(t.shape, t.dtype, name=f"input_{i}") for i, t in enumerate(keras.inputs)]

    @tf.function(input_signature=specs)
    def serve(*args):
        outputs = keras(list(args))
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        if len(outputs) != output_count:
            raise ValueError(f"onnx2tf's model has {len(outputs)} outputs, the ONNX model {output_count}")
        return {OUTPUT_KEY.format(i): value for i, value in enumerate(outputs)}

    function = serve.get_concrete_function()
    tf.saved_model.save(variable_holder(keras, function), str(folder), signatures={"serving_default": function})
    return folder


def _child_main(route: str, canonical: Path, work: Path) -> int:
    started = time.perf_counter()
    try:
        if route == OURS:
            result = _convert_ours(canonical, work)
        else:
            result = _convert_savedmodel(canonical, work, route.split(":", 1)[1])
    except BaseException as e:  # onnx2tf may sys.exit; every failure is a row in the table
        import traceback

        traceback.print_exc()  # into child.log
        result = {"error": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}
    result.update(route=route.split(":", 1)[0], seconds=time.perf_counter() - started,
                  peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    (work / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(_child_main(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])))
    main(sys.argv[1:])
