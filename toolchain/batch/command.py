"""The ``stackc batch`` command and its progress display (registered in ``cli.py``)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click


class _Silent:
    """--json / -q: nothing on stderr."""

    def plan(self, total, cached, workers):
        pass

    def started(self, task):
        pass

    def finished(self, entry):
        pass


class _Lines:
    """Plain lines on stderr: one per task that starts and per task that ends (logs, CI, pipes)."""

    def __init__(self):
        self.total = self.done = 0

    def plan(self, total, cached, workers):
        self.total = total
        click.echo(f"stackc: batch: {total} task(s), {cached} cached, {total - cached} to build on {workers}", err=True)

    def started(self, task):
        click.echo(f"stackc: batch: start {task.label}", err=True)

    def finished(self, entry):
        self.done += 1
        click.echo(f"stackc: batch: [{self.done}/{self.total}] {describe(entry)}", err=True)


class _Bar(_Lines):
    """A terminal: rich's progress bar over the tasks, with the same line per finished task above it."""

    def __init__(self):
        super().__init__()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

        self.bar = Bar(TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("{task.description}"), console=_console(), transient=False)
        self.running: list[str] = []
        self.id = None

    def plan(self, total, cached, workers):
        self.total = total
        self.bar.start()
        self.id = self.bar.add_task("", total=total)
        self.bar.console.print(f"{total} task(s), {cached} cached, {total - cached} to build on {workers}")

    def started(self, task):
        self.running.append(task.label)
        self.bar.update(self.id, description=f"running: {', '.join(self.running)[:80]}")

    def finished(self, entry):
        self.done += 1
        if entry["label"] in self.running:
            self.running.remove(entry["label"])
        self.bar.console.print(describe(entry))
        self.bar.update(self.id, advance=1, description=f"running: {', '.join(self.running)[:80]}")

    def close(self):
        self.bar.stop()


def _console():
    from rich.console import Console

    return Console(stderr=True)


def describe(entry) -> str:
    if entry["status"] == "failed":
        return f"{entry['label']}: FAILED (exit {entry['exit_code']}): {entry['error']}"
    shipped = [v["variant"] for v in entry["variants"] if v["status"] == "shipped"]
    dropped = [v["variant"] for v in entry["variants"] if v["status"] != "shipped"]
    text = f"{entry['label']}: {entry['status']} ({entry['seconds']:.1f} s), shipped {', '.join(shipped) or 'nothing'}"
    return text + (f"; dropped {', '.join(dropped)}" if dropped else "")


@click.command()
@click.argument("job", type=click.Path(exists=True, path_type=Path))
@click.option("--targets", "targets", metavar="WORLD[,WORLD...]", default="",
              help="Worlds for a folder of models (a job file's own 'targets' are used otherwise; this overrides them).")
@click.option("--out", "-o", default=Path("out/batch"), type=click.Path(path_type=Path), show_default=True,
              help="Folder for bundles/, logs/, index.json and report.html.")
@click.option("--cache", type=click.Path(path_type=Path), help="Build cache folder (default: OUT/cache).")
@click.option("--ray", "ray_address", metavar="ADDRESS|auto",
              help="Run the tasks on a Ray cluster (needs stackc[ray]); default: a local process pool.")
@click.option("--workers", type=click.IntRange(min=1), help="At most this many local builds at once "
              "(default: as many as the cores and free memory allow).")
@click.option("--pass-timeout", type=click.FloatRange(min=0.01), metavar="SECONDS", help="As for 'stackc build'.")
@click.option("--pass-memory", type=click.IntRange(min=1), metavar="MB", help="As for 'stackc build'.")
@click.option("--no-report", is_flag=True, help="Do not write OUT/report.html.")
@click.option("--json", "as_json", is_flag=True, help="Print index.json on stdout (with ok, and on failure the error).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def batch(job, targets, out, cache, ray_address, workers, pass_timeout, pass_memory, no_report, as_json, quiet):
    """Build every model of JOB (a .toml job file, or a folder of models with --targets) for its worlds.

    Exit 0 when every task shipped every variant; otherwise the exit code of the first task (in job
    order) that did not: its build's code, or 6 / 5 for a variant dropped by parity / another failure.
    """
    from .job import load_job
    from .run import BatchOptions, check_passed, run_batch

    if ray_address is not None:
        try:
            import ray  # noqa: F401
        except ImportError:
            from ..errors import MissingDependencyError

            raise MissingDependencyError("--ray needs Ray, which is not installed",
                                         hint="pip install 'stackc[ray]'") from None
    worlds = tuple(t.strip() for t in targets.split(",") if t.strip())
    loaded = load_job(job, worlds)
    progress = _Silent() if quiet or as_json else (_Bar() if sys.stderr.isatty() else _Lines())
    try:
        index = run_batch(loaded, BatchOptions(out=out, cache=cache, ray=ray_address, workers=workers,
                                               pass_timeout=pass_timeout, pass_memory=pass_memory), progress)
    finally:
        if isinstance(progress, _Bar):
            progress.close()
    if not no_report:
        from ..report.batch import write_batch_report

        write_batch_report(out, out / "report.html")
    if not as_json and not quiet:
        summary = index["summary"]
        click.echo(f"{summary['built']} built, {summary['cached']} cached, {summary['failed']} failed; "
                   f"index: {out / 'index.json'}" + ("" if no_report else f"; report: {out / 'report.html'}"))
    check_passed(index)  # --json: a failure prints the index with ok false, the error and its exit code
    if as_json:
        click.echo(json.dumps({"ok": True, **index}, indent=2))
