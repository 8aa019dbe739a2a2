"""The ``stackc report`` command (registered in ``cli.py``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path), metavar="BUNDLE|BATCH_DIR")
@click.option("--out", "-o", "report", default=Path("report.html"), type=click.Path(dir_okay=False, path_type=Path),
              show_default=True, help="The HTML file to write.")
@click.option("--timings", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A bundle's per-pass times: the output of 'stackc build --json' (a batch keeps its own).")
def report(path, report, timings):
    """One self-contained HTML page for a bundle (folder or .tar.gz) or a 'stackc batch' output folder."""
    from .batch import write_batch_report
    from .bundle import batch_timings, bundle_report

    if path.is_dir() and (path / "index.json").is_file() and not (path / "manifest.json").exists():
        write_batch_report(path, report)
    else:
        records = _timings(timings) if timings else batch_timings(path)
        html = bundle_report(path, records)
        tmp = report.with_name(f".{report.name}.tmp")
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, report)
    click.echo(f"report: {report}")


def _timings(path: Path) -> list:
    from ..errors import InputError

    try:
        records = json.loads(path.read_text())["timings"]
        if not isinstance(records, list) or not all(isinstance(r, dict) and "id" in r for r in records):
            raise TypeError
        return records
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"--timings {path}: not the output of 'stackc build --json'") from None
