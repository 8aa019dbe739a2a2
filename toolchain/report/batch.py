"""The report of a ``stackc batch`` folder: the model x variant coverage matrix and each task's numbers."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import InputError
from ..bundle.safe_io import MiB, parse_json, read_regular
from .page import Raw, esc, page, size, table

INDEX_MAX = 64 * MiB


def read_index(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "index.json"
    try:
        index = parse_json(read_regular(path, INDEX_MAX, error=InputError), "index.json", error=InputError)
        index["tasks"] = [t for t in index["tasks"] if isinstance(t, dict)]
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (not a stackc batch folder)") from None
    except (KeyError, TypeError):
        raise InputError(f"{path}: not a stackc batch index") from None
    return index


def write_batch_report(folder: Path, report: Path) -> Path:
    html = batch_report(folder, report.parent)
    tmp = report.with_name(f".{report.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, report)
    return report


def batch_report(folder: Path, report_dir: Path) -> str:
    index = read_index(folder)
    tasks = index["tasks"]
    summary = index.get("summary", {})
    parts = [f"<h1>stackc batch: {len(tasks)} build(s)</h1>",
             f"<p class=\"muted\">{esc(summary.get('built', 0))} built, {esc(summary.get('cached', 0))} reused from the "
             f"cache, {esc(summary.get('failed', 0))} failed; stackc {esc(index.get('stackc'))}</p>",
             "<h2>Coverage: model x variant</h2>", _matrix(tasks, Path(folder), report_dir),
             "<p class=\"muted\">green: shipped; amber: shipped on weak evidence; red: dropped or failed; grey: "
             "not a variant of that world. Each cell links to its bundle.</p>",
             "<h2>Builds</h2>", _builds(tasks)]
    failed = [t for t in tasks if t["status"] == "failed"]
    if failed:
        parts += ["<h2>Failures</h2>"] + [f"<div class=\"fail\"><b>{esc(t['label'])}</b> (exit {esc(t['exit_code'])}): "
                                          f"{esc(t['error'])}</div>" for t in failed]
    return page("stackc batch report", "\n".join(parts))


def _matrix(tasks: list[dict[str, Any]], folder: Path, report_dir: Path) -> str:
    variants: list[str] = []
    for task in tasks:
        variants += [v["variant"] for v in task["variants"] if v["variant"] not in variants]
    rows = []
    for task in tasks:
        by_name = {v["variant"]: v for v in task["variants"]}
        link = _link(folder, task.get("bundle") or task.get("log"), report_dir)
        cells = [Raw(f"<b>{esc(task['model'].rsplit('/', 1)[-1])}</b>"), task["world"]]
        cells += [_cell(by_name.get(name), link) for name in variants]
        rows.append(cells)
    return table(["model", "world", *variants], rows, 'id="coverage"')


def _cell(row: dict[str, Any] | None, link: str | None) -> Raw:
    if row is None:
        return Raw("<span class=\"none\">&ndash;</span>")
    if row["status"] == "shipped":
        weak = row.get("parity", {}).get("evidence") == "weak"
        text, css = f"{size(row.get('size'))}{' weak' if weak else ''}", "weak" if weak else "ok"
    else:
        text, css = row["status"], "bad"
    title = esc(row.get("reason") or "")
    inner = f"<a href=\"{esc(link)}\" title=\"{title}\">{esc(text)}</a>" if link else f"<span title=\"{title}\">{esc(text)}</span>"
    return Raw(f"<span class=\"{css}\" style=\"display:block;padding:2px 4px\">{inner}</span>")


def _link(folder: Path, relative: str | None, report_dir: Path) -> str | None:
    """A URL relative to the report: percent-encoded, so folders named with '#', '%' or spaces still resolve."""
    if not relative:
        return None
    target = (Path(folder) / relative).resolve()
    path = Path(os.path.relpath(target, Path(report_dir).resolve())).as_posix() + ("/" if target.is_dir() else "")
    return quote(path)


def _builds(tasks: list[dict[str, Any]]) -> str:
    rows = []
    for t in tasks:
        shipped = sum(v["status"] == "shipped" for v in t["variants"])
        rows.append((t["label"], t["status"], t.get("exit_code"), f"{shipped}/{len(t['variants'])}",
                     t.get("seconds"), size(t.get("peak_memory_bytes")), t["key"][:12]))
    return table(("task", "status", "exit", "variants shipped", "build seconds", "peak memory", "cache key"), rows,
                 'id="builds"')
