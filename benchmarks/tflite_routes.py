"""TFLite routes section of ``make bench``: which route won, what it cost, and where the bytes went.

``python -m benchmarks.run tflite_routes`` or ``python -m benchmarks.tflite_routes [MODEL ...]``
(offline; ``STACKC_BENCH_MODELS`` / ``STACKC_BENCH_WORLDS`` comma lists narrow it too). Each fixture
in tests/fixtures/models is built as a user builds it, ``stackc build MODEL -t WORLD -o TMP --json``,
for edge-mobile (TFLite fp32) and edge-iot (TFLite int8), with ``STACKC_JOBS=1`` so a converter's
seconds are not shared with its sibling variants. One row per TFLite variant, read from the build's
own JSON: the winning route and the routes that lost, the ``convert.tflite`` pass's seconds (its
timing record), the int8 mode, the artifact's size, its size against the same route's fp32 flatbuffer
(``size_vs_fp32``), the size breakdown (toolchain/backends/tflite/anatomy.py) and the parity figures.

Peak MB is the convert pass's isolated child (``python -m toolchain.engine.worker`` for that variant) and
everything it started (onnx2tf, the int8 calibration worker), sampled here every 0.2 s with the same
measure the pass's memory limit uses (``toolchain.process_tree.tree_rss``); the build's JSON has no
memory figures.

Not part of the test suite: minutes of TensorFlow conversions.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from toolchain.engine.runner import worker_label

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "models"
MODELS = ("resnet_tiny", "mobilenet_tiny", "detector_tiny", "lstm_tagger", "gru_audio", "transformer_tiny", "digits_cnn")
WORLDS = ("edge-mobile", "edge-iot")
POLL_SECONDS = 0.2
MB = 2**20


# -- one build, its convert children watched ----------------------------------------------------


def build_watched(model: Path, world: str, out: Path) -> dict[str, Any]:
    """``stackc build --json`` with each TFLite convert child's peak tree RSS; the parsed JSON, or why there is none."""
    from toolchain.process_tree import tree_rss

    from .measure import run_measured, stackc_command

    peaks: dict[str, int] = {}

    def watch(build) -> None:
        for variant, proc in _convert_children(build):
            peaks[variant] = max(peaks.get(variant, 0), tree_rss(proc))

    command = [*stackc_command(), "build", str(model), "-t", world, "-o", str(out), "--json"]
    run = run_measured(command, env={"STACKC_JOBS": "1"}, poll=POLL_SECONDS, capture=True, watch=watch)
    shutil.rmtree(out, ignore_errors=True)
    if run.returncode != 0:
        return {"error": f"exit {run.returncode}: {run.last_error[:200] or 'no output'}",
                "seconds": run.seconds, "peaks": peaks}
    return {**json.loads(run.stdout), "seconds": run.seconds, "peaks": peaks}


def _convert_children(build) -> list[tuple[str, Any]]:
    """(variant, process) for each running convert.tflite worker (``engine.runner.worker_label``)."""
    import psutil

    found = []
    try:
        descendants = build.children(recursive=True)
    except psutil.Error:
        return found
    for proc in descendants:
        try:
            argv = proc.cmdline()
        except psutil.Error:
            continue
        label = worker_label(argv)
        if label is not None and label[0] == "convert.tflite":
            found.append((label[1], proc))
    return found


# -- rows from the build's JSON -----------------------------------------------------------------


def rows_of(name: str, world: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per TFLite variant of the build (or one error row)."""
    if "error" in result:
        return [{"model": name, "world": world, "variant": "-", "error": result["error"]}]
    records = [r for r in result["timings"] if r["id"] == "convert.tflite"]
    rows = []
    for artifact in result["manifest"]["artifacts"]:
        if artifact["format"] != "tflite":
            continue
        conversion = artifact["conversion"]
        record = next((r for r in records if r.get("notes", {}).get("precision") == artifact["precision"]), None)
        outputs = artifact["parity"].get("outputs", [])
        cosines = [o["cosine"] for o in outputs if o.get("cosine") is not None]
        top1 = [o["top1"] for o in outputs if o.get("top1") is not None]
        peak = result["peaks"].get(artifact["variant"])
        rows.append({
            "model": name, "world": world, "variant": artifact["variant"], "precision": artifact["precision"],
            "route": conversion.get("route"), "route_passed_parity": conversion.get("route_passed_parity"),
            "lost": [f"{r['route']}: {r.get('reason', '')}" for r in conversion.get("routes", []) if r["outcome"] == "lost"],
            "convert_seconds": record["seconds"] if record else None,
            "convert_peak_mb": round(peak / MB) if peak else None,
            "int8_mode": conversion.get("int8_mode"),
            "int8_modes_lost": [m["mode"] for m in conversion.get("int8_modes", []) if m["outcome"] == "lost"],
            "size": artifact["size"], "size_vs_fp32": conversion.get("size_vs_fp32"),
            "size_breakdown": conversion.get("size_breakdown"),
            "fp32_size_breakdown": conversion.get("fp32_size_breakdown"),
            "parity_passed": artifact["parity"]["passed"],
            "worst_cosine": min(cosines) if cosines else None, "worst_top1": min(top1) if top1 else None,
            "build_seconds": round(result["seconds"], 1),
        })
    return rows


# -- the table --------------------------------------------------------------------------------


def _cell(value, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def _short_reason(lost: str) -> str:
    route, _, reason = lost.partition(": ")
    reason = reason.replace("parity in LiteRT failed", "parity").replace("needs Flex ops", "Flex")
    return f"{route} ({reason[:70]}{'...' if len(reason) > 70 else ''})"


def _breakdown(parts: dict[str, Any] | None) -> str:
    if not parts:
        return "-"
    return (f"weights {parts['weights']:,} + quant {parts['quantization']:,} + names {parts['names']:,} "
            f"+ structure {parts['structure']:,} B; {parts['ops']} ops, {parts['tensors']} tensors")


def print_rows(rows: list[dict[str, Any]]) -> None:
    head = (f"  {'model':<17} {'world':<12} {'variant':<12} {'route':<34} {'conv s':>7} {'peak MB':>7} "
            f"{'int8 mode':<13} {'size B':>8} {'vs fp32':>7} {'cosine':>8} {'top1':>5}")
    print(head)
    for r in rows:
        if "error" in r:
            print(f"  {r['model']:<17} {r['world']:<12} BUILD FAILED: {r['error']}")
            continue
        route = r["route"] + ("" if r["route_passed_parity"] else " (closest)")
        print(f"  {r['model']:<17} {r['world']:<12} {r['variant']:<12} {route:<34} {_cell(r['convert_seconds'], '{:.1f}'):>7} "
              f"{_cell(r['convert_peak_mb']):>7} {_cell(r['int8_mode']):<13} {r['size']:>8} "
              f"{_cell(r['size_vs_fp32'], '{:.3f}'):>7} {_cell(r['worst_cosine'], '{:.5f}'):>8} "
              f"{_cell(r['worst_top1'], '{:.2f}'):>5}" + ("" if r["parity_passed"] else "  PARITY FAILED"))
        pad = " " * 4
        print(f"{pad}bytes: {_breakdown(r['size_breakdown'])}")
        if r["fp32_size_breakdown"]:
            print(f"{pad}fp32 : {_breakdown(r['fp32_size_breakdown'])}")
        if r["size_breakdown"] and r["size_breakdown"].get("explanation"):
            print(f"{pad}why  : {r['size_breakdown']['explanation']}")
        if r["lost"]:
            print(f"{pad}lost : " + "; ".join(_short_reason(x) for x in r["lost"]))
        if r["int8_modes_lost"]:
            print(f"{pad}int8 modes lost: {', '.join(r['int8_modes_lost'])}")


def cross_world(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per model, edge-iot's int8 artifact size over edge-mobile's fp32 one (the issue's 0.3x goal)."""
    ratios = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        sizes = {r.get("precision"): r["size"] for r in rows if r["model"] == model and "error" not in r}
        if "int8" in sizes and "fp32" in sizes:
            ratios[model] = round(sizes["int8"] / sizes["fp32"], 3)
    return ratios


def _selected(argv: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    def from_env(variable: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = os.environ.get(variable, "")
        return tuple(v.strip() for v in value.split(",") if v.strip()) or default

    models = tuple(argv) or from_env("STACKC_BENCH_MODELS", MODELS)
    unknown = [m for m in models if not (FIXTURES / f"{m}.onnx").is_file()]
    if unknown:
        raise SystemExit(f"unknown fixture model '{unknown[0]}' (known: {', '.join(MODELS)})")
    return models, from_env("STACKC_BENCH_WORLDS", WORLDS)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``argv``: fixture names to limit the run to; none from benchmarks/run.py."""
    models, worlds = _selected(list(argv or ()))
    print("tflite routes: stackc build --json per fixture and world (STACKC_JOBS=1); conv s = the convert.tflite "
          "pass, peak MB = its isolated child's process tree; vs fp32 = the same route's fp32 flatbuffer")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stackc-bench-tflite-") as tmp:
        for name in models:
            for world in worlds:
                print(f"  building {name} for {world} ...", file=sys.stderr, flush=True)
                result = build_watched(FIXTURES / f"{name}.onnx", world, Path(tmp) / f"{name}-{world}")
                rows.extend(rows_of(name, world, result))
    print_rows(rows)
    ratios = cross_world(rows)
    if ratios:
        print("  edge-iot int8 size / edge-mobile fp32 size (goal <= 0.3): "
              + ", ".join(f"{m} {v:.3f}" for m, v in ratios.items()))
    return {"rows": rows, "int8_over_mobile_fp32": ratios}


if __name__ == "__main__":
    main(sys.argv[1:])
