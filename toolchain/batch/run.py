"""``stackc batch``: every (model, world) of a job built once, through the cache, into one output folder.

``<out>/bundles/`` holds each task's bundle, archive and host sidecar (hard links into the cache),
``<out>/logs/`` the stderr of each build that failed, ``<out>/index.json`` one entry per task with
every variant of its world: shipped, dropped (and why) or not built.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StackcError
from .cache import Cache, task_key
from .job import Job, Task, task_dict
from .runner import BUILD_DIR

INDEX = "index.json"


@dataclass
class BatchOptions:
    out: Path
    cache: Path | None = None
    ray: str | None = None
    workers: int | None = None
    pass_timeout: float | None = None
    pass_memory: int | None = None


class BatchFailed(StackcError):
    """Some task did not ship every variant; the exit code is that of the first such task in job order."""

    def __init__(self, message: str, exit_code: int, index: dict[str, Any]):
        super().__init__(message)
        self.exit_code = exit_code
        self.details = index  # --json: the failure object carries the whole index


class Progress:
    """What a batch tells its user; the CLI supplies a terminal or plain-lines one."""

    def plan(self, total: int, cached: int, workers: str) -> None: ...
    def started(self, task: Task) -> None: ...
    def finished(self, entry: dict[str, Any]) -> None: ...


def run_batch(job: Job, options: BatchOptions, progress: Progress | None = None) -> dict[str, Any]:
    progress = progress or Progress()
    keys = [task_key(task) for task in job.tasks]  # an unknown world or recipe fails here, before any folder is made
    out = Path(options.out)
    (out / "bundles").mkdir(parents=True, exist_ok=True)
    cache = Cache(options.cache or out / "cache")
    entries: dict[int, dict[str, Any]] = {}
    pending = []
    for index, (task, key) in enumerate(zip(job.tasks, keys)):
        hit = cache.entry(key)
        if hit is None:
            pending.append((task, key))
        else:
            entries[index] = _entry(task, key, hit, out, cached=True)
    extra = []
    if options.pass_timeout:
        extra += ["--pass-timeout", str(options.pass_timeout)]
    if options.pass_memory:
        extra += ["--pass-memory", str(options.pass_memory)]
    if pending and options.ray:
        from .pools import run_ray

        where = f"Ray at {options.ray}"
        stream = lambda: run_ray(options.ray, pending, cache, extra, progress.started)  # noqa: E731
    elif pending:
        from .pools import local_workers, run_local

        workers = local_workers([t for t, _ in pending], options.workers)
        where = f"local pool of {workers}"
        stream = lambda: run_local(pending, cache, extra, workers, progress.started)  # noqa: E731
    else:
        where, stream = "nothing to run", lambda: iter(())
    progress.plan(len(job.tasks), len(entries), where)
    for entry in entries.values():
        progress.finished(entry)
    order = {id(task): i for i, task in enumerate(job.tasks)}
    for task, key, result, staging in stream():
        entries[order[id(task)]] = _finish(task, key, result, staging, cache, out)
        progress.finished(entries[order[id(task)]])
        _write_index(out, [entries[i] for i in sorted(entries)])
    index = _write_index(out, [entries[i] for i in sorted(entries)])
    index["ran_on"] = where
    return index


def check_passed(index: dict[str, Any]) -> None:
    """Raise ``BatchFailed`` unless every task built and shipped every variant of its world."""
    for entry in index["tasks"]:
        if entry["status"] == "failed":
            raise BatchFailed(f"{entry['label']}: {entry['error']}", entry["exit_code"] or 1, index)
        dropped = [v for v in entry["variants"] if v["status"] != "shipped"]
        if dropped:
            code = 6 if dropped[0]["reason"].startswith("parity failed") else 5
            raise BatchFailed(f"{entry['label']}: variant {dropped[0]['variant']} {dropped[0]['status']}: "
                              f"{dropped[0]['reason']}", code, index)


def _finish(task: Task, key: str, result: dict, staging: Path, cache: Cache, out: Path) -> dict[str, Any]:
    name = result["bundle_name"]
    built = staging / BUILD_DIR
    if result["exit_code"] == 0 and (built / name / "manifest.json").is_file():
        from ..bundle.verify import verify_bundle

        report = verify_bundle(built / name)
        if report.ok:
            entry = cache.publish(staging, key, {k: v for k, v in result.items() if k != "build"})
            return _entry(task, key, entry, out, cached=False)
        result = {**result, "exit_code": 7, "error": f"the built bundle does not verify: {report.problems[0]}"}
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    if (staging / "stderr.log").is_file():
        shutil.copyfile(staging / "stderr.log", logs / f"{name}.log")
    shutil.rmtree(staging, ignore_errors=True)  # a failed build is never cached: the next batch tries again
    return _failed_entry(task, key, result, out)


def _entry(task: Task, key: str, folder: Path, out: Path, cached: bool) -> dict[str, Any]:
    result = json.loads((folder / "result.json").read_text())
    name = result["bundle_name"]
    _link_out(folder / BUILD_DIR, name, out / "bundles")
    manifest = json.loads((out / "bundles" / name / "manifest.json").read_text())
    return {
        **_head(task, key, name), "status": "cached" if cached else "built", "exit_code": 0, "error": None,
        "bundle": f"bundles/{name}", "archive": f"bundles/{name}.tar.gz",
        "seconds": result["seconds"], "peak_memory_bytes": result["peak_memory_bytes"],
        "variants": variant_rows(manifest), "timings": result["timings"],
    }


def _failed_entry(task: Task, key: str, result: dict, out: Path) -> dict[str, Any]:
    name = result["bundle_name"]
    return {
        **_head(task, key, name), "status": "failed", "exit_code": result["exit_code"], "error": result["error"],
        "bundle": None, "archive": None, "log": f"logs/{name}.log" if (out / "logs" / f"{name}.log").is_file() else None,
        "seconds": result["seconds"], "peak_memory_bytes": result["peak_memory_bytes"],
        "variants": [{"variant": v, "status": "not built", "reason": result["error"]} for v in _world_variants(task)],
        "timings": result["timings"],
    }


def _head(task: Task, key: str, name: str) -> dict[str, Any]:
    return {"label": task.label, "name": name, **task_dict(task), "key": key}


def variant_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for artifact in manifest["artifacts"]:
        parity = artifact["parity"]
        outputs = parity.get("outputs", [])
        cosines = [o["cosine"] for o in outputs if o.get("cosine") is not None]
        rows.append({
            "variant": artifact["variant"], "status": "shipped", "reason": None, "format": artifact["format"],
            "precision": artifact["precision"], "size": artifact["size"],
            "parity": {"passed": parity["passed"], "evidence": parity.get("evidence", "ok"), "outputs": len(outputs),
                       "max_abs": max((o.get("max_abs") or 0.0 for o in outputs), default=None),
                       "min_cosine": min(cosines, default=None)},
        })
    for missing in manifest.get("missing", []):
        rows.append({"variant": missing["variant"], "status": "dropped", "reason": missing["reason"]})
    return rows


def _world_variants(task: Task) -> list[str]:
    try:
        from ..recipes import load_recipe
        from ..targets import load_target

        target = load_target(task.world)
        names = [v.name for v in load_recipe(task.recipe or target.default_recipe).variants_for(target)]
    except StackcError:
        return ["(all)"]
    return [n for n in names if not task.variants or n in task.variants]


def _link_out(built: Path, name: str, bundles: Path) -> None:
    """The cache entry's bundle, archive and sidecar into ``bundles/`` as hard links (copies across disks)."""
    for item in (name, f"{name}.tar.gz", f"{name}.host.json"):
        source, target = built / item, bundles / item
        if not source.exists():
            continue
        staging = bundles / f".{item}.batch-{os.getpid()}"
        _remove(staging)
        if source.is_dir():
            shutil.copytree(source, staging, copy_function=_link_or_copy)
        else:
            _link_or_copy(source, staging)
        _remove(target)
        os.rename(staging, target)


def _link_or_copy(source, target) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _write_index(out: Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
    from .. import __version__

    index = {"stackc": __version__, "tasks": entries,
             "summary": {s: sum(e["status"] == s for e in entries) for s in ("built", "cached", "failed")}}
    tmp = out / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=2))
    os.replace(tmp, out / INDEX)
    return index
