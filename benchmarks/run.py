"""``make bench``: each section prints its figures; all of them are also written to bench-results/bench.json.

Sections are modules of this package with a ``main()`` returning their figures; add yours to SECTIONS.
``large`` (a 2.5 GB model, minutes) runs only when named or with ``STACKC_BENCH_LARGE=1``;
``coreml_routes`` (the two Core ML routes, minutes of TensorFlow) when named or with ``STACKC_BENCH_COREML_ROUTES=1``.
``performance`` (stackc against by hand per fixture and corpus model, cloud unless ``STACKC_BENCH_WORLDS``;
preparation share and peak memory) runs by default.
``tflite_routes`` (14 stackc builds of the fixtures for edge-mobile and edge-iot: winning TFLite route,
convert seconds and peak MB, where each .tflite's bytes go) runs by default, and so does
``tflm`` (TFLite Micro int8 bytes and tensor arena beside the fp32 source, two edge-mcu builds), and
``batch`` (stackc batch of four fixtures x cloud beside the sum of their single builds: pool, cache hits, Ray).
``tflite_int8_time`` (fp32 against int8 TFLite route time for recurrent models, a 100-step bi-GRU among them:
tens of minutes) runs when named or with ``STACKC_BENCH_INT8_TIME=1``.
``conformance`` (every ONNX backend node test through every stackc route, benchmarks/conformance.py; the
TFLite route runs onnx2tf per case: hours) runs when named or with ``STACKC_BENCH_CONFORMANCE=1``.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from pathlib import Path

SECTIONS = ("startup", "builds", "performance", "precision", "int8_forms", "large", "coreml_routes", "tflite_routes", "tflm", "batch", "worlds",
            "tflite_int8_time", "conformance")
OPT_IN = {"large": "STACKC_BENCH_LARGE", "coreml_routes": "STACKC_BENCH_COREML_ROUTES",
          "tflite_int8_time": "STACKC_BENCH_INT8_TIME", "conformance": "STACKC_BENCH_CONFORMANCE"}
RESULTS = Path(__file__).resolve().parent.parent / "bench-results" / "bench.json"


def main(argv: list[str]) -> int:
    chosen = argv or [s for s in SECTIONS if s not in OPT_IN or os.environ.get(OPT_IN[s], "") not in ("", "0")]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        print(f"unknown bench section '{unknown[0]}' (known: {', '.join(SECTIONS)})", file=sys.stderr)
        return 2
    figures = {"host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}}
    byte_compile()
    for name in chosen:
        figures[name] = importlib.import_module(f"benchmarks.{name}").main()
        print()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written: {RESULTS}")
    return 0


def byte_compile() -> None:
    """Write the bytecode of stackc's and the benchmarks' sources, as pip does for an installed wheel.

    An editable install leaves it to Python, which writes it on first import unless
    PYTHONDONTWRITEBYTECODE is set (it is on this development host): every process of every measured
    command, stackc's converter children included, then compiled stackc's modules again, 0.1-0.3 s each.
    """
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("toolchain", "benchmarks"):
        compileall.compile_dir(root / package, quiet=1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
