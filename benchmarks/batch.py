"""Batch section: ``stackc batch`` wall time beside the sum of the same builds run one after another.

Four rows, each from a fresh output folder: the single builds in sequence (``stackc build`` per task),
the batch on the local pool (cold cache), the same batch again (all cache hits), and the batch on a
Ray head started on loopback for the measurement (cold cache). Ratios are printed side by side.

Default job: the fixtures x cloud (seconds each). ``--corpus`` makes the job from the real-model corpus
(../shared/corpus, its ``cases.json`` shapes and inputs) for ``--worlds`` (default edge-mobile,edge-iot).
The Ray row also says whether Ray shipped the same variants and the same bundle bytes as the pool.
``--no-singles`` skips the sequential row (real models: it doubles the time); ``--keep DIR`` keeps the
outputs (pool, ray, the job) for a look or a report.

usage: python -m benchmarks.batch [--corpus] [--worlds W,...] [--models SUBSTR,...] [--no-ray] [--no-singles]
                                  [--keep DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ATTEMPTS = 5  # ray start tries: its raylet's 30 s to register is often missed on a loaded machine
# declared memory (the job's memory_mb) where the 2 GiB + 12x source estimate is far short: rxnmap's
# TFLite conversion peaked at 9.6 GB (edge-mobile) and 12.2 GB (edge-iot) in the corpus table
MEMORY_MB = {"chython_rxnmap__rxnmap.onnx": 13000}
FIXTURES = ("resnet_tiny.onnx", "mobilenet_tiny.onnx", "digits_cnn.onnx", "detector_tiny.onnx")


def _toml_list(values) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def fixture_job(folder: Path, worlds: tuple[str, ...]) -> Path:
    lines = [f"targets = {_toml_list(worlds)}"]
    for name in FIXTURES:
        lines += ["[[models]]", f"path = {json.dumps(str(REPO / 'tests' / 'fixtures' / 'models' / name))}"]
    (folder / "job.toml").write_text("\n".join(lines) + "\n")
    return folder / "job.toml"


def corpus_job(folder: Path, worlds: tuple[str, ...], only: list[str]) -> Path:
    """The corpus as a job file: each model with the ``--shape`` and ``--inputs`` its case needs."""
    from benchmarks.corpus import CORPUS, _inputs_file, fetch

    cases = json.loads((CORPUS / "cases.json").read_text())
    lines = [f"targets = {_toml_list(worlds)}"]
    for name, path in sorted(fetch().items()):
        if only and not any(o in name for o in only):
            continue
        case = cases.get(name, {})
        lines += ["[[models]]", f"path = {json.dumps(str(path))}"]
        if name in MEMORY_MB:
            lines.append(f"memory_mb = {MEMORY_MB[name]}")
        shapes = [f"{k}={','.join(str(d) for d in dims)}" for k, dims in case.get("shape", {}).items()]
        if shapes:
            lines.append(f"shape = {_toml_list(shapes)}")
        inputs = _inputs_file(case, folder, Path(name).stem)
        if inputs:
            lines.append(f"inputs = {json.dumps(str(inputs))}")
    (folder / "job.toml").write_text("\n".join(lines) + "\n")
    return folder / "job.toml"


def _tasks(job: Path) -> list:
    from toolchain.batch.job import load_job

    return load_job(job, ()).tasks


def singles(job: Path, out: Path) -> float:
    """Every task as its own ``stackc build``, one after another: the sum a batch is measured against."""
    from benchmarks.measure import run_measured, stackc_command

    total = 0.0
    for task in _tasks(job):
        run = run_measured([*stackc_command(), *task.build_args(out)])
        total += run.seconds
    return total


def batch(job: Path, out: Path, *extra: str) -> tuple[float, dict]:
    from benchmarks.measure import run_measured, stackc_command

    # a checkout edited during the measurement would change stackc's code digest between the runs
    run = run_measured([*stackc_command(), "batch", str(job), "-o", str(out), "--json", "--no-report", *extra],
                       capture=True, env={"STACKC_CACHE_CODE_ID": f"bench-{os.getpid()}"})
    try:
        index = json.loads(run.stdout)
    except ValueError:
        index = {"summary": {}, "tasks": []}
    return run.seconds, index


def _outcomes(index: dict) -> dict:
    return {t["name"]: [(v["variant"], v["status"]) for v in t["variants"]] for t in index.get("tasks", [])}


def differing_bundle_files(first: Path, second: Path) -> list[str]:
    """Files of two batches' ``bundles/`` folders (each bundle's files and archive) whose bytes differ or exist
    in one only. Host sidecars (``*.host.json``) are left out: they hold latencies measured on the build host."""
    def files(folder: Path) -> dict[str, Path]:
        return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
                if p.is_file() and not p.name.endswith(".host.json")}

    a, b = files(first / "bundles"), files(second / "bundles")
    return sorted(name for name in a.keys() | b.keys()
                  if name not in a or name not in b or a[name].read_bytes() != b[name].read_bytes())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def private_ray_head(temp: Path, env: dict[str, str] | None = None, cpus: int | None = None):
    """A Ray head on loopback that belongs to this process; yields its port.

    ``ray start --block`` runs in a session of its own and is stopped by SIGTERM to that one process,
    which stops what it started. ``ray stop`` would stop every Ray on the machine: other people's
    clusters and other test runs included (it killed a measurement here mid-way).
    """
    ray = str(Path(sys.executable).with_name("ray"))
    for attempt in range(ATTEMPTS):  # Ray gives its raylet 30 s to register, which a loaded machine can miss
        port, log = _free_port(), Path(f"{temp}.{attempt}.log")
        command = [ray, "start", "--head", "--block", "--port", str(port), "--ray-client-server-port",
                   str(_free_port()), "--node-ip-address", "127.0.0.1", "--include-dashboard=false",
                   "--disable-usage-stats", f"--temp-dir={temp}", *(["--num-cpus", str(cpus)] if cpus else [])]
        with open(log, "wb") as out:
            head = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env)
        if _wait_ready(head, log, timeout=300):
            break
        _stop(head)
    else:
        raise RuntimeError(f"ray start failed: {log.read_text(errors='replace')[-800:]}")
    try:
        yield port
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)
        for attempt in range(ATTEMPTS):
            Path(f"{temp}.{attempt}.log").unlink(missing_ok=True)


def _wait_ready(head: subprocess.Popen, log: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and head.poll() is None:
        if b"block forever" in log.read_bytes():
            return True
        time.sleep(0.5)
    return False


def _stop(head: subprocess.Popen) -> None:
    if head.poll() is None:
        head.terminate()
    try:
        head.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)  # its own session: only what this head started
        head.wait()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch")
    parser.add_argument("--corpus", action="store_true")
    parser.add_argument("--worlds", default="")
    parser.add_argument("--models", default="")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-singles", action="store_true")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args(argv or [])
    worlds = tuple(w for w in args.worlds.split(",") if w) or (("edge-mobile", "edge-iot") if args.corpus else ("cloud",))
    figures: dict = {"job": "corpus" if args.corpus else "fixtures", "worlds": list(worlds)}
    with tempfile.TemporaryDirectory(prefix="stackc-bench-batch-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        job = (corpus_job(folder, worlds, [m for m in args.models.split(",") if m]) if args.corpus
               else fixture_job(folder, worlds))
        figures["tasks"] = len(_tasks(job))
        if not args.no_singles:
            figures["sum_of_single_builds_s"] = round(singles(job, folder / "singles"), 1)
        seconds, local = batch(job, folder / "pool")
        figures["pool_s"], figures["pool_summary"] = round(seconds, 1), local.get("summary")
        seconds, again = batch(job, folder / "pool")
        figures["pool_cached_s"], figures["cached_summary"] = round(seconds, 1), again.get("summary")
        if not args.no_ray and shutil.which(str(Path(sys.executable).with_name("ray"))):
            with private_ray_head(Path("/tmp") / f"stackc-bench-ray-{os.getpid()}") as port:
                seconds, on_ray = batch(job, folder / "ray", "--ray", f"127.0.0.1:{port}")
                figures["ray_s"], figures["ray_summary"] = round(seconds, 1), on_ray.get("summary")
                figures["ray_same_outcomes_as_pool"] = _outcomes(on_ray) == _outcomes(local)
                figures["ray_differing_bundle_files"] = differing_bundle_files(folder / "pool", folder / "ray")
    _print(figures)
    return figures


def _print(f: dict) -> None:
    base = f.get("sum_of_single_builds_s") or f["pool_s"] or 1.0  # without the singles row, ratios are to the pool
    print(f"batch: {f['tasks']} task(s) ({f['job']} x {', '.join(f['worlds'])}), {os.cpu_count()} cpus")
    if "sum_of_single_builds_s" in f:
        print(f"  sum of single builds     {f['sum_of_single_builds_s']:>8.1f} s   1.00x")
    print(f"  batch, local pool        {f['pool_s']:>8.1f} s   {f['pool_s'] / base:.2f}x   {f['pool_summary']}")
    print(f"  batch again (cache hits) {f['pool_cached_s']:>8.1f} s   {f['pool_cached_s'] / base:.3f}x   "
          f"{f['cached_summary']}  ({100 * f['pool_cached_s'] / max(f['pool_s'], 1e-9):.1f} % of the first run)")
    if "ray_s" in f:
        print(f"  batch, Ray (loopback)    {f['ray_s']:>8.1f} s   {f['ray_s'] / base:.2f}x   {f['ray_summary']}  "
              f"same outcomes as the pool: {f['ray_same_outcomes_as_pool']}")
        differing = f["ray_differing_bundle_files"]
        print(f"  Ray vs pool bundle bytes: {'identical' if not differing else 'differ: ' + ', '.join(differing)}")


if __name__ == "__main__":
    main(sys.argv[1:])
