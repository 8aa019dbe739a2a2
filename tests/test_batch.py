"""stackc batch: real builds of tiny fixtures in a local pool and on a Ray head started on loopback,
the content-addressed cache (hits, misses, a killed batch re-run), a failing model among good ones."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolchain.batch.cache import task_key
from toolchain.batch.job import Task
from toolchain.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "models"
STACKC = [sys.executable, "-c", "from toolchain.cli import main; main()"]
# two tiny models, one file that is not a model; cloud's ONNX variant alone keeps each build to seconds
JOB = """targets = ["cloud"]
[[models]]
path = "resnet_tiny.onnx"
variants = ["onnx-fp32"]
[[models]]
path = "mobilenet_tiny.onnx"
variants = ["onnx-fp32"]
[[models]]
path = "truncated.onnx"
variants = ["onnx-fp32"]
"""


def _job(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("resnet_tiny.onnx", "mobilenet_tiny.onnx"):
        shutil.copy(FIXTURES / name, folder / name)
    (folder / "truncated.onnx").write_bytes((FIXTURES / "resnet_tiny.onnx").read_bytes()[:300])
    (folder / "job.toml").write_text(JOB)
    return folder / "job.toml"


# the checkout may be edited while these run (the code digest would change between runs): name the code instead
CODE_ID = {"STACKC_CACHE_CODE_ID": "tests"}


def _batch(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*STACKC, "batch", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          timeout=900, env={**(env or os.environ), **CODE_ID})


def _statuses(out: Path) -> dict[str, str]:
    index = json.loads((out / "index.json").read_text())
    return {Path(t["model"]).name: t["status"] for t in index["tasks"]}


def _archives(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "bundles").glob("*.tar.gz"))}


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """A batch killed with SIGKILL after its first build, then re-run to the end (one worker: one at a time)."""
    tmp = tmp_path_factory.mktemp("batch")
    job, out = _job(tmp / "job"), tmp / "local"
    cache = out / "cache"
    killed = subprocess.Popen([*STACKC, "batch", str(job), "-o", str(out), "--workers", "1", "-q"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **CODE_ID})
    deadline = time.monotonic() + 600
    finished = partial = []
    while time.monotonic() < deadline and killed.poll() is None:
        names = [p.name for p in cache.iterdir()] if cache.is_dir() else []
        finished = [n for n in names if not n.startswith("stackc-work-batch-")]
        partial = [n for n in names if n.startswith("stackc-work-batch-")]
        if finished and partial:
            break
        time.sleep(0.2)
    assert killed.poll() is None, "the batch ended before it could be killed mid-way"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    time.sleep(1)  # its build child dies with it (parent-death signal)
    left = [p.name for p in cache.iterdir() if p.name.startswith("stackc-work-batch-")]
    rerun = _batch(job, "-o", out, "--workers", "1")
    return {"job": job, "out": out, "finished_before_kill": finished, "partial_at_kill": left, "rerun": rerun,
            "tmp": tmp}


def test_killed_batch_rerun_keeps_finished_builds_and_drops_the_partial_one(local):
    assert len(local["finished_before_kill"]) == 1 and local["partial_at_kill"]
    statuses = _statuses(local["out"])
    assert statuses == {"resnet_tiny.onnx": "cached", "mobilenet_tiny.onnx": "built", "truncated.onnx": "failed"}
    assert not [p for p in (local["out"] / "cache").iterdir() if p.name.startswith("stackc-work-batch-")]
    for archive in (local["out"] / "bundles").glob("*.tar.gz"):
        verified = subprocess.run([*STACKC, "verify", str(archive)], capture_output=True, text=True, cwd=ROOT)
        assert verified.returncode == 0, verified.stderr


def test_a_failing_model_does_not_stop_the_others_and_sets_the_exit_code(local):
    rerun = local["rerun"]
    assert rerun.returncode == 3, rerun.stderr  # the truncated model's own exit code (bad input)
    index = json.loads((local["out"] / "index.json").read_text())
    bad = next(t for t in index["tasks"] if t["status"] == "failed")
    assert bad["exit_code"] == 3 and "\n" not in bad["error"] and "truncated.onnx" in bad["error"]
    assert bad["variants"] == [{"variant": "onnx-fp32", "status": "not built", "reason": bad["error"]}]
    assert (local["out"] / bad["log"]).is_file()
    good = [t for t in index["tasks"] if t["status"] != "failed"]
    for task in good:
        [row] = task["variants"]
        assert row["status"] == "shipped" and row["parity"]["passed"] and row["size"] > 0
        assert task["peak_memory_bytes"] > 0 and task["seconds"] > 0
        assert {r["id"] for r in task["timings"]} >= {"load.check", "optimize", "convert.onnx"}
    assert "stackc: error: resnet" not in rerun.stderr and "truncated.onnx" in rerun.stderr


def test_second_run_is_all_cache_hits_with_identical_bundles(local):
    before = _archives(local["out"])
    again = _batch(local["job"], "-o", local["out"], "--json")
    assert again.returncode == 3
    index = json.loads(again.stdout)
    assert index["summary"] == {"built": 0, "cached": 2, "failed": 1}
    assert index["ok"] is False and index["exit_code"] == 3 and "truncated.onnx" in index["error"]
    assert _archives(local["out"]) == before and len(before) == 2


def test_ray_batch_on_a_loopback_head_gives_the_same_bundles(local):
    pytest.importorskip("ray", reason="stackc[ray] is part of .[dev]; install it to run the Ray batch")
    from benchmarks.batch import private_ray_head

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    # Ray's socket paths must stay short; the head is this test's own (never 'ray stop': it stops every Ray here)
    with private_ray_head(Path("/tmp") / f"stackc-ray-{os.getpid()}", env=env, cpus=2) as port:
        out = local["tmp"] / "ray"
        result = _batch(local["job"], "-o", out, "--ray", f"127.0.0.1:{port}", env=env)
    assert result.returncode == 3, result.stderr[-3000:]
    assert _statuses(out) == {"resnet_tiny.onnx": "built", "mobilenet_tiny.onnx": "built", "truncated.onnx": "failed"}
    assert _archives(out) == _archives(local["out"])


def test_cache_key_follows_content_and_options_not_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("STACKC_CACHE_CODE_ID", "tests")
    model = tmp_path / "a" / "resnet_tiny.onnx"
    model.parent.mkdir()
    shutil.copy(FIXTURES / "resnet_tiny.onnx", model)
    moved = tmp_path / "b" / "resnet_tiny.onnx"
    moved.parent.mkdir()
    shutil.copy(model, moved)
    base = task_key(Task(model, "cloud"))
    assert task_key(Task(moved, "cloud")) == base  # same bytes elsewhere: a hit
    assert task_key(Task(model, "cloud", seed=1)) != base
    assert task_key(Task(model, "edge-desktop")) != base
    assert task_key(Task(model, "cloud", shapes=("input=1,3,32,32",))) != base
    assert task_key(Task(model, "cloud", recipe="desktop-int8")) != base
    moved.write_bytes(moved.read_bytes() + b"\0")
    assert task_key(Task(moved, "cloud")) != base
    monkeypatch.setenv("STACKC_CACHE_CODE_ID", "other")  # another stackc: every key changes
    assert task_key(Task(model, "cloud")) != base


def test_ray_without_ray_installed_is_exit_4_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError, as where it is not installed
    result = CliRunner().invoke(main, ["batch", str(_job(tmp_path)), "-o", str(tmp_path / "o"), "--ray", "auto"])
    assert result.exit_code == 4
    assert "pip install 'stackc[ray]'" in result.output and not (tmp_path / "o").exists()


def test_bad_job_files_are_one_line_errors(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('targets = ["cloud"]\n[[models]]\npath = "m.onnx"\n')
    result = CliRunner().invoke(main, ["batch", str(job)])
    assert result.exit_code == 3 and "models[0]: path 'm.onnx' does not exist" in result.output
    job.write_text('[[models]]\npath = "job.toml"\nshapes = ["x=1"]\n')
    result = CliRunner().invoke(main, ["batch", str(job), "--targets", "cloud"])
    assert result.exit_code == 3 and "unknown key 'shapes'" in result.output
    result = CliRunner().invoke(main, ["batch", str(tmp_path)])
    assert result.exit_code == 2 and "--targets" in result.output
    shutil.copy(FIXTURES / "resnet_tiny.onnx", tmp_path / "m.onnx")
    job.write_text('targets = ["cloud"]\n[[models]]\npath = "m.onnx"\n')
    result = CliRunner().invoke(main, ["batch", str(job), "--targets", "nope", "-o", str(tmp_path / "o")])
    assert result.exit_code == 3 and "unknown target 'nope'" in result.output and not (tmp_path / "o").exists()


def test_batch_report_colours_the_coverage_matrix_and_links_each_cell_to_its_bundle(local):
    from test_report import assert_painted, assert_self_contained, console_errors, render

    page = local["out"] / "report.html"
    html = page.read_text()
    assert_self_contained(html)
    matrix = re.search(r'<table id="coverage">.*?</table>', html, re.S)[0]
    links = re.findall(r'href="([^"]+)"', matrix)
    assert len(links) == 3 and all((page.parent / link).exists() for link in links)
    assert any(link.startswith("bundles/resnet_tiny-0.1.0-cloud") for link in links)
    assert matrix.count('class="ok"') == 2 and matrix.count('class="bad"') == 1
    dom, log = render(page, local["tmp"] / "batch.png")
    assert not console_errors(log), console_errors(log)
    assert 'id="coverage"' in dom and "truncated.onnx" in dom
    assert_painted(local["tmp"] / "batch.png")


def test_batch_report_links_resolve_from_another_folder_when_paths_hold_hash_percent_and_spaces(local, tmp_path):
    from urllib.parse import unquote

    batch = tmp_path / "zoo #1 at 100% (nightly)"
    shutil.copytree(local["out"], batch, symlinks=True)
    report = tmp_path / "reports" / "zoo.html"
    report.parent.mkdir()
    subprocess.run([*STACKC, "report", str(batch), "-o", str(report)], check=True, capture_output=True, timeout=300)
    matrix = re.search(r'<table id="coverage">.*?</table>', report.read_text(), re.DOTALL)[0]
    links = re.findall(r'href="([^"]+)"', matrix)
    assert len(links) == 3 and all("#" not in link and " " not in link for link in links)
    assert all((report.parent / unquote(link)).exists() for link in links)


def test_a_toolchain_folder_in_the_working_directory_does_not_replace_stackc_in_the_builds(tmp_path):
    """A raylet started in another checkout gave its workers that checkout's 'toolchain' through '-m' (cwd first)."""
    job = _job(tmp_path / "job")
    impostor = tmp_path / "cwd" / "toolchain"
    impostor.mkdir(parents=True)
    (impostor / "__init__.py").write_text("raise SystemExit('imported the toolchain folder of the working directory')\n")
    result = subprocess.run([sys.executable, "-P", "-c", "from toolchain.cli import main; main()", "batch", str(job),
                             "-o", str(tmp_path / "out"), "--workers", "1", "-q"], capture_output=True, text=True,
                            cwd=impostor.parent, timeout=900, env={**os.environ, **CODE_ID, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 3, result.stderr[-2000:]
    assert _statuses(tmp_path / "out") == {"resnet_tiny.onnx": "built", "mobilenet_tiny.onnx": "built",
                                           "truncated.onnx": "failed"}


def test_the_local_pool_starts_a_task_only_while_the_declared_memory_fits():
    """Two heavy tasks never run together when their declared memory exceeds the budget; small ones fill in."""
    from toolchain.batch.pools import _next_fitting

    def task(name, mb):
        return Task(model=Path(f"{name}.onnx"), world="edge-mobile", memory_mb=mb), name

    queue = [task("heavy-a", 13000), task("heavy-b", 13000), task("small", 3000)]
    gib = 2**30
    assert _next_fitting(queue, {}, budget=1) == 0  # nothing runs: the first task starts, however large
    assert _next_fitting(queue[1:], {"heavy-a": 13000 * 2**20}, budget=22 * gib) == 1  # heavy-b waits, small starts
    assert _next_fitting(queue[1:2], {"heavy-a": 13000 * 2**20}, budget=22 * gib) is None
    assert _next_fitting(queue[1:2], {"heavy-a": 13000 * 2**20}, budget=30 * gib) == 0
