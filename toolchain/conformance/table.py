"""Run the node tests through routes and write the per-route conformance table into the README.

    python -m toolchain.conformance.table --routes coreml,ort,openvino,tflite --write-readme
    python -m toolchain.conformance.table --reuse --write-readme     # from the last measured results
    python -m toolchain.conformance.table --routes tflite --jobs 2 --resume   # forked workers, resumable

Each route's outcomes are kept in ``bench-results/conformance/<route>.json``; with ``--jobs``/``--resume``
every case's outcome is also cached as it lands under ``<route>.cases/`` (``pool.py``), so an interrupted
run resumes where it stopped and ``--rerun wrong,crash`` (or ``--cases NAME,...``) measures only those again.

The README table (every
route with saved results) sits between the ``conformance-table`` markers. ``--sample`` runs only ``SAMPLE`` (the CI sample of the
slow routes); ``--update-expected ROUTE`` rewrites that route's reviewed crash list from the results.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from . import STATUSES, Outcome, run_case
from .routes import ROUTES

REPO = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO / "bench-results" / "conformance"
README = REPO / "README.md"
BEGIN, END = "<!-- conformance-table:begin -->", "<!-- conformance-table:end -->"
TITLES = {"coreml": "Core ML", "tflite": "TFLite", "openvino": "OpenVINO", "ort": "ORT format"}

# The slow routes' CI sample: one or two plain cases of the op families real CNN, transformer and
# audio graphs are made of (conv, pooling, norms, matmul/gemm, activations, elementwise, shape ops,
# reductions, resize, softmax), so a regression in how a route is driven shows up in CI.
SAMPLE = (
    "test_add_bcast", "test_averagepool_2d_default", "test_batchnorm_epsilon", "test_concat_2d_axis_0",
    "test_conv_with_strides_padding", "test_gemm_default_no_bias", "test_layer_normalization_4d_axis3",
    "test_matmul_3d", "test_maxpool_2d_pads", "test_reduce_mean_keepdims_example", "test_relu",
    "test_reshape_reordered_all_dims", "test_resize_upsample_scales_nearest", "test_sigmoid",
    "test_slice", "test_softmax_axis_1", "test_transpose_all_permutations_0", "test_where_example",
    "test_erf", "test_gather_0",
)


def run_route(route: str, cases, progress=None) -> list[Outcome]:
    outcomes = []
    for i, case in enumerate(cases):
        outcomes.append(run_case(route, case))
        if progress and (i + 1) % 100 == 0:
            progress(f"{route}: {i + 1}/{len(cases)}")
    return outcomes


def measure(route: str, cases, jobs: int = 1, resume: bool = False, again: set[str] = frozenset(),
            rerun: set[str] = frozenset(), progress=None) -> tuple[list[Outcome], float]:
    """The route's outcome for every case and the seconds they took: in this process, or (``jobs`` > 1 or
    ``resume``) in forked workers through the per-case cache, measuring only cases not cached, named in
    ``again`` or cached with a status in ``rerun``."""
    if jobs <= 1 and not resume:
        outcomes = run_route(route, cases, progress)
        return outcomes, sum(o.seconds for o in outcomes)
    from .pool import forget, read_cache, run_pool

    cache = RESULTS_DIR / f"{route}.cases"
    if not resume and cache.is_dir():
        forget(cache, {c.name for c in cases})
    forget(cache, set(again) | {name for name, o in read_cache(cache).items() if o.status in rerun})
    done = run_pool(route, cases, cache, jobs=jobs, progress=progress)
    outcomes = [done[c.name] for c in cases if c.name in done]
    return outcomes, sum(o.seconds for o in outcomes)


def save(route: str, outcomes: list[Outcome], seconds: float, sample: bool, of: int | None = None) -> Path:
    """``seconds``: the cases' own times summed (comparable whether a run used workers or was resumed)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{route}.json"
    path.write_text(json.dumps({"route": route, "sample": sample, "seconds": round(seconds, 1), "of": of,
                                "outcomes": [o.as_dict() for o in outcomes]}, indent=0) + "\n", encoding="utf-8")
    return path


def load(route: str) -> dict | None:
    path = RESULTS_DIR / f"{route}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["outcomes"] = [Outcome(**o) for o in data["outcomes"]]
    return data


def totals(outcomes: list[Outcome]) -> dict[str, int]:
    counts = Counter(o.status for o in outcomes)
    claimed = [o for o in outcomes if o.claimed]
    return {"cases": len(outcomes), "claimed": len(claimed),
            "claimed_pass": sum(o.status == "pass" for o in claimed),
            **{s: counts.get(s, 0) for s in STATUSES}}


def principal_op(case: str, ops: list[str], schema_names: dict[str, str]) -> str:
    """The op a node test is about: its one op, or the longest op name its test name starts with."""
    if len(ops) == 1:
        return ops[0]
    key = case.removeprefix("test_").replace("_", "").lower()
    matches = [name for squashed, name in schema_names.items() if key.startswith(squashed)]
    return max(matches, key=len) if matches else (ops[0] if ops else "?")


def _schema_names() -> dict[str, str]:
    import onnx.defs

    return {s.name.lower(): s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain in ("", "ai.onnx")}


def _short(reason: str) -> str:
    text = re.sub(r"^pass '[^']+'( failed \(after [^)]*\))?: ", "", reason)
    text = re.sub(r"node '[^']+': ", "", text)
    return " ".join(text.split())[:110].replace("|", "\\|")


def render(results: dict[str, dict]) -> str:
    names = _schema_names()
    lines = [BEGIN, "", "| route | node cases | claimed (all ops converted) | pass of claimed | refused | wrong | crash | "
             "measured on |", "|---|---|---|---|---|---|---|---|"]
    for route, data in results.items():
        t = totals(data["outcomes"])
        share = f"{t['claimed_pass']} ({100 * t['claimed_pass'] / t['claimed']:.1f} %)" if t["claimed"] else "-"
        scope = "the CI sample" if data.get("sample") else "every node test"
        if data.get("of") and data["of"] > t["cases"]:
            scope = f"{t['cases']} of {data['of']} node tests so far (a run still to resume)"
        lines.append(f"| {TITLES.get(route, route)} | {t['cases']} | {t['claimed']} | {share} | {t['refused']} | "
                     f"{t['wrong']} | {t['crash']} | {scope}, {data.get('seconds', 0):.0f} s of case time |")
    lines.append("")
    for route, data in results.items():
        for op, (atol, why) in sorted(ROUTES[route].kernel_atol.items()):
            lines.append(f"- {TITLES.get(route, route)}: cases with {op} are held to atol {atol:g} (reviewed): {why}")
    lines.append("")
    for route, data in results.items():
        by_op: dict[str, list[Outcome]] = defaultdict(list)
        for o in data["outcomes"]:
            by_op[principal_op(o.case, o.ops, names)].append(o)
        lines += [f"<details><summary>{TITLES.get(route, route)}: per op</summary>", "",
                  "| op | cases | pass | refused | wrong | crash | why (first refusal or failure) |", "|---|---|---|---|---|---|---|"]
        for op in sorted(by_op):
            group = by_op[op]
            c = Counter(o.status for o in group)
            first = next((o for o in group if o.status in ("wrong", "crash")), None) or \
                next((o for o in group if o.status == "refused"), None)
            lines.append(f"| {op} | {len(group)} | {c['pass']} | {c['refused']} | {c['wrong']} | {c['crash']} | "
                         f"{_short(first.reason) if first else ''} |")
        lines += ["", "</details>", ""]
    lines.append(END)
    return "\n".join(lines)


def write_readme(table: str, readme: Path = README) -> None:
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme.name} has no {BEGIN} ... {END} markers; add them where the table belongs")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + table + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.conformance.table", description=__doc__.splitlines()[0])
    parser.add_argument("--routes", default=",".join(ROUTES), help="comma-separated: " + ", ".join(ROUTES))
    parser.add_argument("--sample", action="store_true", help="only the CI sample of cases")
    parser.add_argument("--reuse", action="store_true", help="no runs: use the last saved results")
    parser.add_argument("--write-readme", action="store_true", help="write the table between the README markers")
    parser.add_argument("--jobs", type=int, default=1, help="forked worker processes (per-case cache, resumable)")
    parser.add_argument("--resume", action="store_true", help="keep the per-case cache: run only cases not measured yet")
    parser.add_argument("--rerun", default="", help="with --resume: measure cases of these statuses again (wrong,crash)")
    parser.add_argument("--cases", default="", help="with --resume: measure these cases again (comma-separated names)")
    parser.add_argument("--cached-only", action="store_true", help="run nothing: save the cases cached so far "
                        "(a partial run, marked as such in the table)")
    parser.add_argument("--update-expected", metavar="ROUTE", help="rewrite ROUTE's reviewed crash list from its results")
    args = parser.parse_args(argv)
    routes = [r for r in args.routes.split(",") if r]
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        print(f"unknown route '{unknown[0]}' (known: {', '.join(ROUTES)})", file=sys.stderr)
        return 2
    results = {}
    if args.cached_only:
        from .pool import planned, read_cache

        for route in routes:
            cache = RESULTS_DIR / f"{route}.cases"
            done = list(read_cache(cache).values())
            print(f"results: {save(route, done, sum(o.seconds for o in done), args.sample, of=planned(cache))}")
    elif not args.reuse:
        from .cases import load_cases

        cases = load_cases()
        if args.sample:
            cases = [c for c in cases if c.name in SAMPLE]
        for route in routes:
            again, rerun = {c for c in args.cases.split(",") if c}, {s for s in args.rerun.split(",") if s}
            outcomes, seconds = measure(route, cases, args.jobs, args.resume, again, rerun,
                                        progress=lambda m: print(m, file=sys.stderr, flush=True))
            print(f"results: {save(route, outcomes, seconds, args.sample)}")
    for route in routes:
        data = load(route)
        if data is None:
            print(f"no saved results for route '{route}' (run without --reuse first)", file=sys.stderr)
            return 3
        results[route] = data
        t = totals(data["outcomes"])
        print(f"{route}: " + ", ".join(f"{k} {v}" for k, v in t.items()))
    if args.update_expected:
        from .expected import write_expected

        crashes = {o.case: o.reason for o in results[args.update_expected]["outcomes"] if o.status == "crash"}
        print(f"written: {write_expected(args.update_expected, crashes, EXPECTED_HEADER)} ({len(crashes)} crashes)")
    if args.write_readme:  # every route with saved results, not only the ones run now
        write_readme(render({r: results.get(r) or load(r) for r in ROUTES if r in results or load(r)}))
        print(f"written: {README}")
    return 0


EXPECTED_HEADER = """Reviewed crashes of this route on the ONNX backend node tests (toolchain/conformance/expected.py).
Each is a known bug with its measured error; fix it (or turn it into a clean refusal naming the op and
attribute), then delete the line. Wrong results are never listed here.
Regenerate: python -m toolchain.conformance.table --routes ROUTE --update-expected ROUTE"""


if __name__ == "__main__":
    sys.exit(main())
