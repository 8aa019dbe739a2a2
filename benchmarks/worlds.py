"""Several worlds at once: `stackc build -t cloud -t edge-desktop` (one preparation) beside
the single-world builds run one after another, for an ONNX fixture. Prints the ratio; no test asserts it."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .measure import run_measured, stackc_command

REPO = Path(__file__).resolve().parent.parent
WORLDS = ("cloud", "edge-desktop")
MODELS = ("tests/fixtures/models/resnet_tiny.onnx",)


def bench_model(model: Path, out: Path) -> dict:
    base = [*stackc_command(), "build", str(model), "-q"]
    together = run_measured([*base, *[a for w in WORLDS for a in ("-t", w)], "-o", str(out / "together")])
    single = [run_measured([*base, "-t", w, "-o", str(out / w)]) for w in WORLDS]
    failed = [r.last_error for r in [together, *single] if r.returncode != 0]
    apart = sum(r.seconds for r in single)
    return {"model": model.name, "worlds": list(WORLDS), "together_s": round(together.seconds, 2),
            "apart_s": round(apart, 2), "apart_over_together": round(apart / together.seconds, 2), "failed": failed}


def main() -> dict:
    results = []
    out = Path(tempfile.mkdtemp(prefix="stackc-bench-worlds-"))
    try:
        for model in MODELS:
            result = bench_model(REPO / model, out)
            results.append(result)
            print(f"worlds: {result['model']} for {', '.join(WORLDS)}: together {result['together_s']:.1f} s, "
                  f"one by one {result['apart_s']:.1f} s: {result['apart_over_together']:.2f}x"
                  + (f"; FAILED: {result['failed']}" if result["failed"] else ""))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"models": results}
