"""Run one task wherever it is scheduled (a local pool thread or a Ray worker): the same child process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .job import Task

BUILD_DIR = "build"


def run_task(task: Task, work: Path, extra_args: list[str], jobs: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Build ``task`` into ``work/build``; the child's result with the one-line error of a failed build."""
    from .. import process_tree

    work = Path(work)
    request = work / "request.json"
    result_path = work / "task-result.json"
    request.write_text(json.dumps({"args": task.build_args(work / BUILD_DIR) + extra_args, "result": str(result_path)}))
    # PYTHONSAFEPATH (Python 3.11+): "-m" must not put the current folder first on sys.path, or a 'toolchain'
    # folder there (a Ray raylet started in another checkout) would be imported instead of stackc
    env = {**(os.environ if env is None else env), "STACKC_JOBS": str(jobs), "PYTHONSAFEPATH": "1"}
    with open(work / "stdout.log", "wb") as out, open(work / "stderr.log", "wb") as err:
        with process_tree.running([sys.executable, "-m", "toolchain.batch.task", str(request)],
                                  stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env) as child:
            code = child.wait()
    if result_path.is_file():
        result = json.loads(result_path.read_text())
    else:  # killed (signal, OOM killer) before it could write anything
        result = {"exit_code": -code if code < 0 else code or 1, "build": None, "timings": [], "seconds": None,
                  "peak_memory_bytes": None}
    result["error"] = None if result["exit_code"] == 0 else _error_line(work / "stderr.log", code)
    from ..app.build import bundle_name

    result["bundle_name"] = bundle_name(task.model, task.version, task.world)
    return result


def _error_line(path: Path, code: int) -> str:
    lines = path.read_text(errors="replace").splitlines()
    for line in lines:
        if line.startswith("stackc: "):
            return line[len("stackc: "):].strip()
    if code < 0:
        return f"the build process was killed by signal {-code}"
    return (lines[-1].strip() if lines else f"the build process exited with {code}")[:500]


def read_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path: what a Ray worker sends back to the driver."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """The driver's side of ``read_files``: only plain relative paths inside ``folder``."""
    for name, data in files.items():
        parts = Path(name).parts
        if Path(name).is_absolute() or not parts or ".." in parts:
            raise ValueError(f"a worker sent back a file outside its folder: {name!r}")
        target = Path(folder, *parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
