"""Large-model section of ``make bench``: ``stackc build`` of a ~2.5 GB external-data model for cloud.

Opt-in (``STACKC_BENCH_LARGE=1`` or ``python -m benchmarks.run large``): it writes 2.5 GB to a
scratch folder and converts it, which takes minutes. Reports wall time and the build's peak
memory (sampled RSS of its process tree) against the model's size on disk: the goal is that the
weights are never held more than twice (peak/size <= 2).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from .large_model import write_large_model
from .measure import run_measured, stackc_command

MB = 2**20
WORLD = "cloud"  # ONNX Runtime + OpenVINO: the formats issue 9 asks to carry past 2 GB


def enabled() -> bool:
    return os.environ.get("STACKC_BENCH_LARGE", "") not in ("", "0")


def bench_large() -> dict:
    with tempfile.TemporaryDirectory(prefix="stackc-bench-large-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        model = write_large_model(folder / "model")
        written = time.perf_counter() - started
        size = sum(p.stat().st_size for p in (folder / "model").iterdir())
        out = folder / "out"
        run = run_measured([*stackc_command(), "build", str(model), "--target", WORLD, "--out", str(out), "--keep-going"])
        bundle = out / f"{model.stem}-0.1.0-{WORLD}"
        shipped = sorted(p.name for p in (bundle / "artifacts").iterdir()) if (bundle / "artifacts").is_dir() else []
        shutil.rmtree(out, ignore_errors=True)
    return {"world": WORLD, "model_mb": round(size / MB), "write_seconds": round(written, 1),
            "build_seconds": round(run.seconds, 1), "returncode": run.returncode,
            "peak_mb": round(run.peak_rss / MB), "peak_over_size": round(run.peak_rss / size, 2),
            "artifacts": shipped}


def print_large(result: dict) -> None:
    print(f"large model: {result['model_mb']} MB external-data ONNX for {result['world']} (--keep-going): "
          f"build {result['build_seconds']} s (exit {result['returncode']}), peak {result['peak_mb']} MB "
          f"= {result['peak_over_size']}x its size (goal <= 2); shipped: {', '.join(result['artifacts']) or 'nothing'}")


def main() -> dict:
    result = bench_large()
    print_large(result)
    return result


if __name__ == "__main__":
    main()
