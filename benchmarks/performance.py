"""Performance section of ``make bench`` (issue 23): stackc against the same work done by hand.

Per model (two fixtures and the development corpus models present) and world, run in turn on the
shared machine: ``stackc build`` (its ``--json`` timings split it into preparation, conversions,
parity and the rest), ``python -m benchmarks.raw`` (the world's conversions by direct library calls
from an onnxslim-simplified model: the by-hand yardstick, without parity runs) and each format's raw
conversion alone in its own process (the largest single converter's peak memory). Printed ratios:
stackc / by hand (goal <= 1.2), preparation / the slowest conversion it feeds (goal <= 0.3), stackc's
peak / the largest converter's (goal <= 1.5). The by-hand run includes one parity run of each artifact
(the issue's yardstick); the ratio's goal is 0.8 where two or more variants convert side by side, else 1.2;
``floor`` is the slowest conversion by hand over the by-hand total, the least any schedule can reach;
preparation is weighed against the slowest conversion done by hand (its own process's import included). ``STACKC_BENCH_WORLDS`` (default cloud),
``STACKC_BENCH_MODELS`` (substrings) and ``STACKC_BENCH_REPEAT`` (default 1) narrow or widen the run.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from .builds import FIXTURES, _median, _ratio, _selected
from .corpus import CORPUS, build_command
from .measure import run_measured
from .raw import world_variants

FIXTURE_MODELS = ("resnet_tiny", "transformer_tiny")
PREPARATION = ("load.check", "upgrade.ir", "bind.inputs", "fix.shapes", "optimize", "names.sanitize", "layout.detect")
MB = 2**20


def models() -> dict[str, tuple[Path, dict]]:
    """{name: (path, corpus case)}: the fixtures, then every corpus model already fetched."""
    found = {name: (FIXTURES / f"{name}.onnx", {}) for name in FIXTURE_MODELS}
    cases_file = CORPUS / "cases.json"
    folder = Path(os.environ.get("STACKC_CORPUS_MODELS", "/tmp/stackc-corpus/models"))
    if cases_file.exists():
        for name, case in json.loads(cases_file.read_text()).items():
            if (folder / name).exists():
                found[name] = (folder / name, case)
    wanted = _selected("STACKC_BENCH_MODELS", ())
    return {k: v for k, v in found.items() if not wanted or any(w in k for w in wanted)}


def split_timings(timings: list[dict]) -> dict[str, float]:
    """A build's seconds by kind: preparation steps, each conversion, parity runs, host runs."""
    kinds = {"prepare": 0.0, "convert": 0.0, "parity": 0.0, "host": 0.0, "slowest_convert": 0.0}
    for record in timings:
        step, seconds = record["id"], record.get("seconds", 0.0)
        if step in PREPARATION:
            kinds["prepare"] += seconds
        elif step.startswith("convert."):
            kinds["convert"] += seconds
            kinds["slowest_convert"] = max(kinds["slowest_convert"], seconds)
        elif step.startswith(("parity.", "host.")):
            kinds[step.split(".")[0]] += seconds
    return {k: round(v, 3) for k, v in kinds.items()}


def _raw_command(model: Path, world: str, out: Path, case: dict, only: str | None = None) -> list[str]:
    shapes = [f"--shape={name}={','.join(map(str, dims))}" for name, dims in case.get("shape", {}).items()]
    return [sys.executable, "-m", "benchmarks.raw", str(model), world, str(out), *shapes] + (["--only", only] if only else [])


def bench_one(model: Path, case: dict, world: str, folder: Path, repeat: int) -> dict:
    builds, raws, splits = [], [], []
    for i in range(repeat):  # in turn: drift on the shared machine hits both alike
        out = folder / f"build-{i}"
        run = run_measured(build_command(model, case, world, out, folder), capture=True)
        shutil.rmtree(out, ignore_errors=True)
        builds.append(run)
        try:
            splits.append(split_timings(json.loads(run.stdout)["timings"]))
        except (ValueError, KeyError):
            pass
        raws.append(run_measured(_raw_command(model, world, folder / f"raw-{i}", case), capture=True))
        shutil.rmtree(folder / f"raw-{i}", ignore_errors=True)
    formats = list(dict.fromkeys(v["format"] for v in world_variants(world)[1]))
    alone = {fmt: run_measured(_raw_command(model, world, folder / f"alone-{fmt}", case, fmt)) for fmt in formats}
    stackc, by_hand = _median(builds), _median(raws)
    split = {k: round(statistics.median(s[k] for s in splits), 3) for k in splits[0]} if splits else {}
    slowest = _slowest_by_hand(raws)
    peak = max((r.peak_rss for r in builds if r.returncode == 0), default=0)
    converter = max((r.peak_rss for r in alone.values() if r.returncode == 0), default=0)
    return {"by_hand_seconds": by_hand, "stackc_seconds": stackc, "stackc_over_by_hand": _ratio(stackc, by_hand),
            "seconds_by_kind": split, "preparation_share": _ratio(split.get("prepare"), stackc),
            "slowest_convert_by_hand": slowest,
            # no schedule of the conversions beats the slowest one alone: the ratio a build would reach with
            # preparation free and every other conversion in its shadow (above 0.8: the 0.8 goal is out of reach)
            "parallel_floor": _ratio(slowest, by_hand),
            "preparation_over_slowest_convert": _ratio(split.get("prepare"), slowest),
            "goal": 0.8 if _parallel_converters(world) else 1.2,
            "peak_mb": round(peak / MB), "largest_converter_peak_mb": round(converter / MB),
            "peak_over_converter": _ratio(peak, converter),
            "failed": [k for k, runs in (("stackc", builds), ("by_hand", raws)) if any(r.returncode for r in runs)]
            + [f"alone-{fmt}" for fmt, r in alone.items() if r.returncode], "runs": repeat}


def _slowest_by_hand(raws) -> float | None:
    """The slowest single conversion of the by-hand runs (median over runs): what preparation is weighed against."""
    slowest = []
    for run in raws:
        try:
            seconds = json.loads(run.stdout.strip().splitlines()[-1])["seconds"]
        except (ValueError, KeyError, IndexError):
            continue
        steps = [v for k, v in seconds.items() if k not in ("onnxslim", "reference") and not k.startswith("parity.")]
        slowest.append(max(steps, default=0.0))
    return round(statistics.median(slowest), 3) if slowest else None


def _parallel_converters(world: str) -> bool:
    """Two or more variants whose conversions can run side by side (the issue's 0.8 goal applies)."""
    return sum(1 for v in world_variants(world)[1] if v["format"] != "onnx") >= 2


def _cell(value, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


HEADER = (f"  {'model':<34} {'world':<12} {'hand s':>7} {'stackc s':>8} {'ratio':>6} goal  {'floor':>5} {'prep s':>7} "
          f"{'share':>6} {'prep/conv':>9} [0.3] {'peak MB':>7} {'conv MB':>7} {'peak/conv':>9} [1.5]")


def row(name: str, world: str, r: dict) -> str:
    return (f"  {name[:34]:<34} {world:<12} {_cell(r['by_hand_seconds']):>7} {_cell(r['stackc_seconds']):>8} "
            f"{_cell(r['stackc_over_by_hand']):>6} [{r['goal']}] {_cell(r.get('parallel_floor')):>5} "
            f"{_cell(r['seconds_by_kind'].get('prepare')):>7} "
            f"{_cell(r['preparation_share']):>6} {_cell(r['preparation_over_slowest_convert']):>9}       "
            f"{r['peak_mb']:>7} {r['largest_converter_peak_mb']:>7} {_cell(r['peak_over_converter']):>9}"
            + (f"  FAILED: {', '.join(r['failed'])}" if r["failed"] else ""))


def main() -> dict:
    repeat = max(1, int(os.environ.get("STACKC_BENCH_REPEAT", "1")))
    worlds = _selected("STACKC_BENCH_WORLDS", ("cloud",))
    results: dict = {}
    print("performance: stackc build against the same conversions by hand (medians; goals in brackets)")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="stackc-bench-perf-") as tmp:
        for name, (path, case) in models().items():
            for world in worlds:
                results.setdefault(name, {})[world] = figures = bench_one(path, case, world, Path(tmp), repeat)
                print(row(name, world, figures), flush=True)  # row by row: a corpus run takes a while
    return results


if __name__ == "__main__":
    main()
