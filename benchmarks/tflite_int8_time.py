"""int8 TFLite route time against the fp32 route's, for recurrent models (issue 21, issue 23's "converts once").

``python -m benchmarks.run tflite_int8_time`` or ``python -m benchmarks.tflite_int8_time [MODEL ...]``.
For each model, side by side in one run: ``stackc build MODEL -t edge-mobile --variants tflite-fp32``
and ``-t edge-iot --variants tflite-int8`` (same static shapes: both worlds fix the same named dims),
``STACKC_JOBS=1``; the ``convert.tflite`` pass's seconds from each build's own timing record, their
ratio, how many times onnx2tf ran in the pass (``onnx2tf_runs`` in the artifact's conversion facts) and
whether the winning route ran onnx2tf's per-op validation (off for unrolled recurrent graphs; n/a when the
direct-tf route wrote the graph without onnx2tf).
Models: the lstm_tagger and gru_audio fixtures and ``bigru100``, a 100-step, 2-layer bidirectional
GRU (hidden 128 over 64 features, 1.7 MB of fp32 weights, PyTorch's ``linear_before_reset``) built
here with onnx.helper, the shape of the issue's audio model.

``STACKC_BENCH_BEFORE=REV`` adds the same builds made by the code of git revision REV (its tree
extracted to a temporary folder, run with the same venv), for a before/after in one run.
Not part of the test suite: minutes of TensorFlow conversions.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "models"
MODELS = ("lstm_tagger", "gru_audio", "bigru100")
SIDES = (("fp32", "edge-mobile", "tflite-fp32"), ("int8", "edge-iot", "tflite-int8"))


def make_bigru(path: Path, seq: int = 100, features: int = 64, hidden: int = 128, layers: int = 2) -> Path:
    """A [seq, 1, features] -> [seq, 1, 8] tagger: ``layers`` bidirectional GRUs (PyTorch's export form) and a MatMul head."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(21)
    bound = 1 / np.sqrt(hidden)  # PyTorch's GRU initialisation range
    weights = lambda *shape: rng.uniform(-bound, bound, shape).astype(np.float32)  # noqa: E731
    inits, nodes, x, width = [], [], "frames", features
    for layer in range(layers):
        inits += [numpy_helper.from_array(weights(2, 3 * hidden, width), f"W{layer}"),
                  numpy_helper.from_array(weights(2, 3 * hidden, hidden), f"R{layer}"),
                  numpy_helper.from_array(weights(2, 6 * hidden), f"B{layer}"),
                  numpy_helper.from_array(np.array([seq, 1, 2 * hidden], np.int64), f"shape{layer}")]
        nodes += [helper.make_node("GRU", [x, f"W{layer}", f"R{layer}", f"B{layer}"], [f"Y{layer}"], name=f"gru{layer}",
                                   hidden_size=hidden, direction="bidirectional", linear_before_reset=1),
                  helper.make_node("Transpose", [f"Y{layer}"], [f"T{layer}"], perm=[0, 2, 1, 3]),  # [seq, 1, 2, hidden]
                  helper.make_node("Reshape", [f"T{layer}", f"shape{layer}"], [f"X{layer}"])]
        x, width = f"X{layer}", 2 * hidden
    inits.append(numpy_helper.from_array((rng.standard_normal((width, 8)) * 0.1).astype(np.float32), "head"))
    nodes.append(helper.make_node("MatMul", [x, "head"], ["scores"], name="head"))
    graph = helper.make_graph(nodes, "bigru", [helper.make_tensor_value_info("frames", TensorProto.FLOAT, [seq, 1, features])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [seq, 1, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], producer_name="stackc-bench")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def build(model: Path, world: str, variant: str, out: Path, code: Path | None = None) -> dict[str, Any]:
    """One ``stackc build --json`` of one variant; its convert.tflite seconds and conversion facts, or its error."""
    from .measure import run_measured, stackc_command

    env = {"STACKC_JOBS": "1"}
    if code is not None:  # another revision's tree, first on the path (its isolated children inherit it)
        env["PYTHONPATH"] = str(code)
    command = [*stackc_command(), "build", str(model), "-t", world, "--variants", variant, "-o", str(out), "--json"]
    run = run_measured(command, env=env, poll=0.5, capture=True)
    if run.returncode != 0:
        return {"error": f"exit {run.returncode}: {run.last_error[:160] or 'no output'}", "build_seconds": run.seconds}
    result = json.loads(run.stdout)
    artifact = next(a for a in result["manifest"]["artifacts"] if a["variant"] == variant)
    conversion = artifact["conversion"]
    seconds = sum(r["seconds"] for r in result["timings"] if r["id"] == "convert.tflite")
    winner = next((r for r in conversion.get("routes", []) if r["route"] == conversion.get("route")), {})
    return {"seconds": round(seconds, 1), "build_seconds": round(run.seconds, 1), "route": conversion.get("route"),
            "int8_mode": conversion.get("int8_mode"), "onnx2tf_runs": conversion.get("onnx2tf_runs"),
            "op_validation": ("off" if "onnx2tf_op_validation" in winner
                              else "n/a" if conversion.get("onnx2tf_runs") == 0 else "on"),
            "parity_passed": artifact["parity"]["passed"]}


def _extract(revision: str, folder: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _model_path(name: str, tmp: Path) -> Path:
    return make_bigru(tmp / "bigru100.onnx") if name == "bigru100" else FIXTURES / f"{name}.onnx"


def _side(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"FAILED ({row['error']})"
    runs = "?" if row["onnx2tf_runs"] is None else row["onnx2tf_runs"]
    mode = f", {row['int8_mode']}" if row["int8_mode"] else ""
    facts = f"{row['route']}{mode}; onnx2tf x{runs}, op validation {row['op_validation']}"
    return f"{row['seconds']:.1f} s ({facts})" + ("" if row["parity_passed"] else " PARITY FAILED")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    models = tuple(argv or ()) or MODELS
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model '{unknown[0]}' (known: {', '.join(MODELS)})")
    before = os.environ.get("STACKC_BENCH_BEFORE", "")
    print("tflite int8 time: convert.tflite seconds, fp32 route (edge-mobile) vs int8 route (edge-iot), STACKC_JOBS=1; "
          "ratio = int8 / fp32" + (f"; 'before' = the code of {before}" if before else ""))
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="stackc-bench-int8-time-") as tmp:
        tmp_path = Path(tmp)
        codes: dict[str, Path | None] = {"now": None}
        if before:
            codes["before"] = _extract(before, Path(tempfile.mkdtemp(dir=tmp, prefix="before-")))
        for name in models:
            model = _model_path(name, tmp_path)
            for label, code in codes.items():
                rows = {}
                for precision, world, variant in SIDES:
                    print(f"  building {name} {variant} ({label}) ...", file=sys.stderr, flush=True)
                    rows[precision] = build(model, world, variant, tmp_path / f"{name}-{label}-{variant}", code)
                ok = all("error" not in r for r in rows.values())
                ratio = round(rows["int8"]["seconds"] / rows["fp32"]["seconds"], 2) if ok and rows["fp32"]["seconds"] else None
                figures.setdefault(name, {})[label] = {**rows, "ratio": ratio}
                print(f"  {name:<12} {label:<6} fp32 {_side(rows['fp32'])}")
                print(f"  {'':<12} {'':<6} int8 {_side(rows['int8'])}  ratio {'-' if ratio is None else f'{ratio:.2f}x'}",
                      flush=True)
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
