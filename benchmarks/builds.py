"""Build section of ``make bench``: ``stackc build`` per world against the raw conversions (benchmarks/raw.py).

For each architecture and world, side by side and interleaved (the machine is shared, so drift
hits every command alike), medians of ``STACKC_BENCH_REPEAT`` runs (default 3) of:
- ``stackc build`` with ``STACKC_JOBS=1`` (variants one after another) and with default jobs;
- ``python -m benchmarks.raw`` (the same conversions by direct library calls, one process);
and once per format, that format's raw conversion alone in its own process, for the largest
single converter's peak memory. Per-pass seconds and each artifact's size and latency come from
the builds' own ``--json`` timings. ``STACKC_BENCH_MODELS`` / ``STACKC_BENCH_WORLDS`` (comma
lists) narrow the run.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from .measure import Run, run_measured, stackc_command

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "models"
WORLDS = ("cloud", "edge-desktop", "edge-mobile", "edge-iot")
MODELS = ("resnet_tiny", "transformer_tiny", "cnn_wide")  # a small CNN, attention, a 28 MB CNN made here
MB = 2**20


def write_cnn_wide(path: Path) -> Path:
    """A VGG-like CNN (7 M parameters, 28 MB): big enough that converters, not start-up, dominate."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, previous, channels = [], [], "image", 3
    for i, width in enumerate((64, 128, 256, 512, 512, 512)):
        w = (rng.standard_normal((width, channels, 3, 3)) * np.sqrt(2.0 / (channels * 9))).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"conv{i}.w"), numpy_helper.from_array(np.zeros(width, np.float32), f"conv{i}.b")]
        nodes += [helper.make_node("Conv", [previous, f"conv{i}.w", f"conv{i}.b"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        previous, channels = f"r{i}", width
        if i < 4:
            nodes.append(helper.make_node("MaxPool", [previous], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]))
            previous = f"p{i}"
    fc = (rng.standard_normal((channels, 1000)) / np.sqrt(channels)).astype(np.float32)
    inits += [numpy_helper.from_array(fc, "fc.w"), numpy_helper.from_array(np.zeros(1000, np.float32), "fc.b")]
    nodes += [helper.make_node("GlobalAveragePool", [previous], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"])]
    graph = helper.make_graph(nodes, "cnn_wide", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 64, 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="stackc-bench")
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


def _model_path(name: str, folder: Path) -> Path:
    return write_cnn_wide(folder / "cnn_wide.onnx") if name == "cnn_wide" else FIXTURES / f"{name}.onnx"


def _world_formats(world: str) -> list[str]:
    from .raw import world_variants

    return list(dict.fromkeys(v["format"] for v in world_variants(world)[1]))


def _stackc(model: Path, world: str, out: Path, jobs: str | None) -> tuple[Run, list[dict]]:
    env = {"STACKC_JOBS": jobs} if jobs else {}
    if not jobs:
        env["STACKC_JOBS"] = ""  # default jobs even when the caller's environment sets it
    run = run_measured([*stackc_command(), "build", str(model), "--target", world, "--out", str(out), "--json"],
                       env, capture=True)
    shutil.rmtree(out, ignore_errors=True)
    try:
        timings = json.loads(run.stdout)["timings"] if run.returncode == 0 else []
    except (ValueError, KeyError):
        timings = []
    return run, timings


def _raw(model: Path, world: str, out: Path, only: str | None = None) -> Run:
    cmd = [sys.executable, "-m", "benchmarks.raw", str(model), world, str(out)] + (["--only", only] if only else [])
    run = run_measured(cmd)
    shutil.rmtree(out, ignore_errors=True)
    return run


def _median(runs: list[Run]) -> float | None:
    ok = [r.seconds for r in runs if r.returncode == 0]
    return round(statistics.median(ok), 3) if ok else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def bench_world(model: Path, world: str, folder: Path, repeat: int) -> dict:
    runs: dict[str, list[Run]] = {"seq": [], "par": [], "raw": []}
    pass_seconds: dict[str, list[float]] = {}
    host: dict[str, dict] = {}
    for i in range(repeat):  # interleaved: drift on the shared machine hits all three alike
        for mode, jobs in (("seq", "1"), ("par", None)):
            run, timings = _stackc(model, world, folder / f"out-{mode}-{i}", jobs)
            runs[mode].append(run)
            for record in timings:
                if record["id"].startswith("host."):
                    host.setdefault(record["host"]["variant"], record["host"])
                elif mode == "seq":
                    pass_seconds.setdefault(record["id"], []).append(record["seconds"])
        runs["raw"].append(_raw(model, world, folder / f"raw-{i}"))
    alone = {fmt: _raw(model, world, folder / f"alone-{fmt}", fmt) for fmt in _world_formats(world)}
    seq, par, raw = (_median(runs[k]) for k in ("seq", "par", "raw"))
    build_peak = max((r.peak_rss for k in ("seq", "par") for r in runs[k] if r.returncode == 0), default=0)
    seq_peak = max((r.peak_rss for r in runs["seq"] if r.returncode == 0), default=0)
    converter_peak = max((r.peak_rss for r in alone.values() if r.returncode == 0), default=0)
    return {
        "raw_seconds": raw, "stackc_seq_seconds": seq, "stackc_par_seconds": par,
        "seq_over_raw": _ratio(seq, raw), "par_over_raw": _ratio(par, raw),
        "build_peak_mb": round(build_peak / MB, 1), "seq_build_peak_mb": round(seq_peak / MB, 1),
        "largest_converter_peak_mb": round(converter_peak / MB, 1),
        "peak_over_converter": _ratio(build_peak, converter_peak),
        "converter_peak_mb": {fmt: round(r.peak_rss / MB, 1) for fmt, r in alone.items()},
        "passes_seconds": {k: round(statistics.median(v), 3) for k, v in pass_seconds.items()},
        "artifacts": {name: {"size_bytes": h.get("size_bytes"), "median_latency_ms": h.get("median_latency_ms")}
                      for name, h in host.items()},
        "failed": {k: sum(r.returncode != 0 for r in v) for k, v in runs.items() if any(r.returncode for r in v)},
        "runs": repeat,
    }


def _selected(variable: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = os.environ.get(variable, "")
    return tuple(v.strip() for v in value.split(",") if v.strip()) or default


def bench_builds() -> dict:
    repeat = max(1, int(os.environ.get("STACKC_BENCH_REPEAT", "3")))
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="stackc-bench-builds-") as tmp:
        folder = Path(tmp)
        for name in _selected("STACKC_BENCH_MODELS", MODELS):
            model = _model_path(name, folder)
            results[name] = {"size_bytes": model.stat().st_size, "worlds": {}}
            for world in _selected("STACKC_BENCH_WORLDS", WORLDS):
                print(f"  building {name} for {world} ...", file=sys.stderr, flush=True)
                results[name]["worlds"][world] = bench_world(model, world, folder, repeat)
    results["_cross_precision"] = _cross_precision(results)
    return results


def _cross_precision(results: dict) -> dict:
    """int8/fp16 over fp32 of the same format across worlds (TFLite int8 of edge-iot over edge-mobile's fp32)."""
    ratios = {}
    for name, entry in results.items():
        if name.startswith("_"):
            continue
        by_variant = {}
        for world in entry["worlds"].values():
            by_variant.update(world["artifacts"])
        for variant, figures in by_variant.items():
            fmt, _, precision = variant.rpartition("-")
            base = by_variant.get(f"{fmt}-fp32")
            if precision == "fp32" or not base or not figures.get("median_latency_ms") or not base.get("median_latency_ms"):
                continue
            ratios.setdefault(name, {})[variant] = {
                "size_over_fp32": _ratio(figures["size_bytes"], base["size_bytes"]),
                "latency_over_fp32": _ratio(figures["median_latency_ms"], base["median_latency_ms"])}
    return ratios


def _cell(value, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def print_builds(results: dict) -> None:
    print("builds: stackc build against the same conversions by direct library calls (medians; lower is better)")
    print("  goals: seq/raw <= 1.05, par/raw <= 0.70, peak/converter <= 1.50")
    head = (f"  {'model':<17} {'world':<13} {'raw s':>6} {'seq s':>6} {'seq/raw':>7} {'par s':>6} {'par/raw':>7} "
            f"{'peak MB':>7} {'conv MB':>7} {'peak/conv':>9}")
    print(head)
    for name, entry in results.items():
        if name.startswith("_"):
            continue
        for world, r in entry["worlds"].items():
            print(f"  {name:<17} {world:<13} {_cell(r['raw_seconds']):>6} {_cell(r['stackc_seq_seconds']):>6} "
                  f"{_cell(r['seq_over_raw']):>7} {_cell(r['stackc_par_seconds']):>6} {_cell(r['par_over_raw']):>7} "
                  f"{_cell(r['build_peak_mb'], '{:.0f}'):>7} {_cell(r['largest_converter_peak_mb'], '{:.0f}'):>7} "
                  f"{_cell(r['peak_over_converter']):>9}" + (f"  FAILED runs: {r['failed']}" if r["failed"] else ""))
            print(f"  {'':<17} {'':<13} peak MB: seq build {r['seq_build_peak_mb']:.0f}, alone per converter "
                  + ", ".join(f"{k} {v:.0f}" for k, v in r["converter_peak_mb"].items()))
            passes = ", ".join(f"{k} {v:.2f}" for k, v in r["passes_seconds"].items() if v >= 0.05)
            print(f"  {'':<17} {'':<13} passes (s, seq): {passes}")
            arts = ", ".join(f"{k} {a['size_bytes'] / 1024:.0f} KiB {_cell(a['median_latency_ms'], '{:.3f}')} ms"
                             for k, a in r["artifacts"].items() if a.get("size_bytes"))
            print(f"  {'':<17} {'':<13} artifacts: {arts}")
    for name, ratios in results.get("_cross_precision", {}).items():
        for variant, r in ratios.items():
            print(f"  {name:<17} {variant:<13} size/fp32 {_cell(r['size_over_fp32'], '{:.3f}')}, "
                  f"latency/fp32 {_cell(r['latency_over_fp32'], '{:.3f}')}")


def main() -> dict:
    results = bench_builds()
    print_builds(results)
    return results


if __name__ == "__main__":
    main()
