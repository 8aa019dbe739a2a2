"""Where tasks run: a local process pool sized to the machine, or a Ray cluster (``--ray ADDRESS|auto``).

Both run ``runner.run_task`` (a ``stackc build`` child process) and hand back (task, key, result,
folder holding the built bundle or None); the caller publishes into the cache. Ray workers build in
a temp folder of their own node and send the bundle's files back, so the cluster needs no shared disk.
"""
from __future__ import annotations

import os
import shutil
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterator

from ..errors import MissingDependencyError, UsageError
from .cache import Cache
from .job import Task
from .runner import BUILD_DIR, read_files, run_task, write_files

Done = tuple[Task, str, dict, Path]  # task, key, result, staging folder (its build/ holds the bundle if it built)
RAY_HINT = "pip install 'stackc[ray]'"


def local_workers(tasks: list[Task], limit: int | None = None) -> int:
    """As many builds at once as the cores allow (``--workers`` lowers it); ``run_local`` budgets the memory."""
    cores = os.cpu_count() or 1
    return max(1, min(limit or cores, cores, len(tasks)))


def _next_fitting(queue: list[tuple[Task, str]], running: dict, budget: int) -> int | None:
    """Index of the first queued task whose declared memory fits beside the running ones (any, when none runs)."""
    if not running:
        return 0 if queue else None
    held = sum(running.values())
    return next((i for i, (task, _) in enumerate(queue) if held + task.declared_memory() <= budget), None)


def run_local(pending: list[tuple[Task, str]], cache: Cache, extra: list[str], workers: int,
              started: Callable[[Task], None], budget: int | None = None) -> Iterator[Done]:
    """Up to ``workers`` builds at once, a task starting only while the running tasks' declared memory and its
    own fit in ``budget`` (default: the memory free now), as Ray packs them; one task always runs."""
    import psutil

    budget = psutil.virtual_memory().available if budget is None else budget
    jobs = max(1, (os.cpu_count() or 1) // workers)  # converters inside one build share the task's cores

    def one(task: Task, key: str) -> Done:
        staging = cache.staging(key)
        started(task)
        return task, key, run_task(task, staging, extra, jobs), staging

    queue, running = list(pending), {}
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stackc-batch")
    try:
        while queue or running:
            while len(running) < workers and (index := _next_fitting(queue, running, budget)) is not None:
                task, key = queue.pop(index)
                running[pool.submit(one, task, key)] = task.declared_memory()
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                del running[future]
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _remote_build(task: Task, extra: list[str], threads: str | None) -> tuple[dict, dict[str, bytes]]:
    """On a Ray worker: the same child build in a temp folder; the result and the bundle's files.

    Ray sets ``OMP_NUM_THREADS`` to the task's CPUs in its workers; the build gets the driver's value
    instead (``threads``, None: unset), as a local build would: thread counts change float reductions,
    so the ORT-format bytes and the parity figures."""
    from ..workdirs import owned_tempdir

    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    with owned_tempdir("stackc-work-") as work:
        result = run_task(task, Path(work), extra, jobs=1, env=env)
        files = read_files(Path(work) / BUILD_DIR) if result["exit_code"] == 0 else {}
        files.update({f"logs/{n}": (Path(work) / n).read_bytes() for n in ("stderr.log", "stdout.log")
                      if (Path(work) / n).is_file()})
        return result, files


def run_ray(address: str, pending: list[tuple[Task, str]], cache: Cache, extra: list[str],
            started: Callable[[Task], None]) -> Iterator[Done]:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("--ray needs Ray, which is not installed", hint=RAY_HINT) from None
    connected_here = not ray.is_initialized()
    if connected_here:
        try:
            ray.init(address=address, logging_level="warning", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UsageError(f"--ray {address}: cannot connect to a Ray cluster: {' '.join(str(e).split())[:300]}") from e
    remote = ray.remote(_remote_build)
    # a task asking more than the largest node has would wait forever: it gets that node
    largest = max((n["Resources"].get("memory", 0) for n in ray.nodes() if n.get("Alive")), default=0) or None
    refs = {}
    try:
        for task, key in pending:
            memory = min(task.declared_memory(), int(largest)) if largest else task.declared_memory()
            ref = remote.options(num_cpus=1, memory=memory, max_retries=0).remote(
                task, extra, os.environ.get("OMP_NUM_THREADS"))
            refs[ref] = (task, key)
            started(task)
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            task, key = refs.pop(ready[0])
            try:
                result, files = ray.get(ready[0])
            except Exception as e:  # the worker died (node lost, OOM-killed): this task failed, not the batch
                from ..app.build import bundle_name

                result = {"exit_code": 1, "build": None, "timings": [], "seconds": None, "peak_memory_bytes": None,
                          "error": f"Ray task failed: {type(e).__name__}: {' '.join(str(e).split())[:300]}",
                          "bundle_name": bundle_name(task.model, task.version, task.world)}
                files = {}
            staging = cache.staging(key)
            write_files(staging, {(n if n.startswith("logs/") else f"{BUILD_DIR}/{n}"): d for n, d in files.items()})
            for name in ("stderr.log", "stdout.log"):
                if (staging / "logs" / name).is_file():
                    shutil.move(str(staging / "logs" / name), staging / name)
            yield task, key, result, staging
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        if connected_here:
            ray.shutdown()
