"""Precision section of ``make bench``: int8/fp32 and fp16/fp32 ratios of size and latency, per backend.

Each architecture is built once by ``stackc build`` with fp32, fp16 and int8 variants of the
ONNX (ONNX Runtime), ORT-format and OpenVINO backends; the figures are the build's own host
measurements (size, median latency of warm runs in each artifact's runtime). int8 is static QDQ
for CNNs and dynamic for transformer/recurrent models; only the digits CNN has real calibration
data, the others are calibrated on seeded random data (their int8 accuracy is unproven, their
sizes and latencies are still what int8 gives).
"""
from __future__ import annotations

import json
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "tests" / "fixtures" / "models"
FORMATS = {"onnx": "onnx-fp32", "ort": "ort-fp32", "openvino": "openvino-fp32"}
ARCHITECTURES = (  # (fixture, int8 mode for the ONNX backends)
    ("digits_cnn", "static"),
    ("resnet_tiny", "static"),
    ("mobilenet_tiny", "static"),
    ("transformer_tiny", "dynamic"),
)


def _bench_world(folder: Path) -> Path:
    """edge-desktop's ONNX and OpenVINO variants plus an ORT-format one (edge-mobile's), fp32 only."""
    from tests.conftest import write_toml
    from toolchain.targets import target_dir

    desktop = tomllib.loads((target_dir() / "edge-desktop.toml").read_text())
    mobile = tomllib.loads((target_dir() / "edge-mobile.toml").read_text())
    variants = [v for v in desktop["variants"] if v["name"] in FORMATS.values()]
    variants += [v for v in mobile["variants"] if v["name"] == "ort-fp32"]
    desktop["variants"] = variants
    desktop["name"] = "bench-precision"
    return write_toml(folder / "bench-precision.toml", desktop)


def _bench_recipe(folder: Path, int8_mode: str) -> Path:
    lines = ['name = "bench-precision"', 'description = "fp32, fp16 and int8 of every backend"', 'extends = "default"']
    for fmt, base in FORMATS.items():
        for precision in ("fp16", "int8"):
            options = f'\noptions = {{ int8_mode = "{int8_mode}" }}' if precision == "int8" and fmt != "openvino" else ""
            model_type = '\noptions = { model_type = "transformer" }' if precision == "int8" and fmt == "openvino" \
                and int8_mode == "dynamic" else ""
            lines.append(f'\n[[variants]]\nfrom = "{base}"\nname = "{fmt}-{precision}"\nprecision = "{precision}"'
                         f'{options}{model_type}')
    path = folder / f"bench-precision-{int8_mode}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _calibration(folder: Path, name: str) -> Path | None:
    if name != "digits_cnn":
        return None
    sys.path.insert(0, str(REPO / "tests" / "fixtures"))
    from digits import split

    import numpy as np

    path = folder / "digits-calibration.npz"
    np.savez(path, image=split()["calibration_x"])
    return path


def bench_precision() -> dict:
    """{architecture: {backend: {precision: {size, latency_ms, ratios}}}} from real builds."""
    from toolchain.app.build import BuildRequest, build

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="stackc-bench-") as tmp:
        folder = Path(tmp)
        world = _bench_world(folder)
        for name, int8_mode in ARCHITECTURES:
            request = BuildRequest(model=MODELS / f"{name}.onnx", target=str(world),
                                   recipe=str(_bench_recipe(folder, int8_mode)), out=folder / "out",
                                   calibration=_calibration(folder, name), allow_parity_failure=True, keep_going=True)
            outcome = build(request)
            host = {r["host"]["variant"]: r["host"] for r in outcome.timings if r["id"].startswith("host.")}
            parity = {a["variant"]: a["parity"]["passed"] for a in outcome.manifest["artifacts"]}
            results[name] = {"int8": int8_mode, "backends": _ratios(host, parity),
                             "missing": {m["variant"]: m["reason"] for m in outcome.manifest.get("missing", [])}}
    return results


def _ratios(host: dict, parity: dict) -> dict:
    backends = {}
    for fmt in FORMATS:
        fp32 = host.get(f"{fmt}-fp32")
        if not fp32 or "median_latency_ms" not in fp32:
            continue
        row = {"fp32": {"size": fp32["size_bytes"], "latency_ms": fp32["median_latency_ms"]}}
        for precision in ("fp16", "int8"):
            other = host.get(f"{fmt}-{precision}")
            if not other or "median_latency_ms" not in other:
                continue
            row[precision] = {
                "size": other["size_bytes"], "latency_ms": other["median_latency_ms"],
                "size_ratio": round(other["size_bytes"] / fp32["size_bytes"], 3),
                "latency_ratio": round(other["median_latency_ms"] / fp32["median_latency_ms"], 3),
                "parity_passed": parity.get(f"{fmt}-{precision}"),
            }
        backends[fmt] = row
    return backends


def print_precision(results: dict) -> None:
    print("precision: size and median latency relative to fp32 (this host; lower is better)")
    print(f"  {'model':<18} {'backend':<9} {'fp16 size':>9} {'fp16 lat':>9} {'int8 size':>9} {'int8 lat':>9}  int8 mode")
    for name, entry in results.items():
        for fmt, row in entry["backends"].items():
            cells = []
            for precision in ("fp16", "int8"):
                figures = row.get(precision)
                cells += [f"{figures['size_ratio']:.3f}", f"{figures['latency_ratio']:.3f}"] if figures else ["-", "-"]
            print(f"  {name:<18} {fmt:<9} {cells[0]:>9} {cells[1]:>9} {cells[2]:>9} {cells[3]:>9}  {entry['int8']}")
        for variant, reason in entry["missing"].items():
            print(f"  {name:<18} {variant}: not built: {reason[:100]}")


def main(out: Path = REPO / "out" / "bench") -> dict:
    results = bench_precision()
    print_precision(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written: {out / 'precision.json'}")
    return results


if __name__ == "__main__":
    main()
