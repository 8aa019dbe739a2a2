"""The page shell every report shares: inline CSS, escaping, small table helpers."""
from __future__ import annotations

import html
from typing import Any, Iterable

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1d232b;max-width:1280px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d7dce2}
h3{font-size:15px;margin:18px 0 6px}table{border-collapse:collapse;margin:6px 0 12px}
th,td{border:1px solid #d7dce2;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f2f4f7}
td.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#66707c}
.ok{background:#d8f3dc}.weak{background:#fff1c2}.bad{background:#ffd6d6}.none{background:#eceff3;color:#66707c}
.chip{display:inline-block;border:1px solid #b9c2cc;border-radius:10px;padding:0 7px;margin:1px 3px 1px 0;font-size:12px;background:#fff}
.warn{border-left:4px solid #e0a100;background:#fff8e1;padding:6px 10px;margin:8px 0}
.fail{border-left:4px solid #c62828;background:#ffebee;padding:6px 10px;margin:8px 0}
figure{display:inline-block;margin:4px 12px 4px 0}figcaption{font-size:12px;color:#66707c}
code{font-size:12px;background:#f2f4f7;padding:0 3px}a{color:#0b57d0}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def table(headers: Iterable[str], rows: Iterable[Iterable[Any]], attrs: str = "") -> str:
    """Cells are escaped unless given as ``Raw``; numbers are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table{(' ' + attrs) if attrs else ''}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Raw(str):
    """HTML that is already safe (made by this package)."""


def _cell(value: Any) -> str:
    if isinstance(value, Raw):
        return f"<td>{value}</td>"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"<td class=\"num\">{esc(num(value))}</td>"
    return f"<td>{esc(value)}</td>"


def num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def size(value: int | None) -> str:
    if value is None:
        return ""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value} B"


def chips(values: Iterable[Any]) -> Raw:
    return Raw("".join(f"<span class=\"chip\">{esc(v)}</span>" for v in values))
