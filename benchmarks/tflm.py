"""TFLite Micro: what a microcontroller must hold, next to the fp32 source it came from.

For each trained fixture (digits CNN, keyword-spotting DS-CNN), an edge-mcu build calibrated on its
training slice; printed side by side: the fp32 ONNX source's bytes, the int8 TFLM model's bytes
(flash), the tensor arena TFLM measured and the one shipped with its margin (RAM), the int8/fp32
size ratio, and top-1 agreement with fp32 on held-back data (run in the TFLM interpreter).
Run alone: python -m benchmarks.run tflm
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "tests" / "fixtures" / "models"
CASES = {"digits_cnn": ("digits", "image"), "kws_cnn": ("kws", "mfcc")}


def _measure(name: str, data_module: str, input_name: str, work: Path) -> dict:
    import importlib

    import onnxruntime as ort

    from toolchain.backends.tflm.runner import make_runner

    sys.path.insert(0, str(REPO / "tests" / "fixtures"))
    data = importlib.import_module(data_module).split()
    source = MODELS / f"{name}.onnx"
    np.savez(work / "calibration.npz", **{input_name: data["calibration_x"]})
    built = subprocess.run([sys.executable, "-m", "toolchain.cli", "build", str(source), "--target", "edge-mcu",
                            "--out", str(work / "out"), "--calibration", str(work / "calibration.npz"), "--json"],
                           capture_output=True, text=True, cwd=REPO)
    if built.returncode != 0:
        return {"error": (built.stderr.strip().splitlines() or ["build failed"])[-1]}
    result = json.loads(built.stdout)
    entry = next(a for a in result["manifest"]["artifacts"] if a["format"] == "tflm")
    tflm = entry["conversion"]["tflm"]
    model = (Path(result["bundle"]) / entry["path"]).read_bytes()
    run = make_runner(model, entry["conversion"]["io"], tflm["arena"]["measured_bytes"])
    fp32 = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(
        None, {input_name: data["held_back_x"]})[0].argmax(1)
    int8 = np.array([int(np.argmax(next(iter(run({input_name: x[None]}).values())))) for x in data["held_back_x"]])
    return {"fp32_source_bytes": source.stat().st_size, "tflm_flash_bytes": tflm["flash_bytes"],
            "arena_measured_bytes": tflm["arena"]["measured_bytes"], "arena_shipped_bytes": tflm["ram_bytes"],
            "size_ratio": round(tflm["flash_bytes"] / source.stat().st_size, 3),
            "top1_agreement": round(float(np.mean(fp32 == int8)), 4), "held_back": int(len(int8)),
            "ops": sorted(tflm["ops"]), "tflm": tflm["version"]}


def main() -> dict:
    print("== TFLite Micro (edge-mcu): int8 model and tensor arena vs the fp32 source ==")
    print(f"{'model':<12} {'fp32 source':>12} {'tflm int8':>10} {'ratio':>6} {'arena':>8} {'+margin':>8} {'top-1 vs fp32':>14}")
    figures = {}
    for name, (data_module, input_name) in CASES.items():
        with tempfile.TemporaryDirectory(prefix="stackc-bench-tflm-") as work:
            row = _measure(name, data_module, input_name, Path(work))
        figures[name] = row
        if "error" in row:
            print(f"{name:<12} build failed: {row['error']}")
            continue
        print(f"{name:<12} {row['fp32_source_bytes']:>10} B {row['tflm_flash_bytes']:>8} B {row['size_ratio']:>6.3f} "
              f"{row['arena_measured_bytes']:>6} B {row['arena_shipped_bytes']:>6} B "
              f"{row['top1_agreement']:>8.4f} ({row['held_back']})")
    print("flash = the int8 model array (TFLM's own code not counted); arena measured in the TFLM interpreter "
          "(reference kernels), shipped with the margin for optimized kernels' scratch buffers")
    return figures


if __name__ == "__main__":
    main()
