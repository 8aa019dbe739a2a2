"""A partial build's record of itself (``manifest.partial``) and the build.log a merge puts back together.

A full build's log is: the build's own lines (loading, preparation), then each variant's lines in
the world's order (replayed by ``variants.convert_all``), then the ``--keep-going`` notes of dropped
variants, then of parity-dropped ones. A partial build writes the same log restricted to its
variants and records the sections' line counts, so ``stackc merge`` can interleave the parts'
sections into exactly the log a full build writes on the same machine.
"""
from __future__ import annotations

from typing import Any

from ..errors import BundleError

SECTION_ORDER = ("variant", "dropped", "parity-dropped")  # the order convert_all logs them in


def partial_record(world, variants, lines: list[str], sections: list) -> dict[str, Any]:
    """``manifest.partial``: which variants this part holds, the world's, and its log's sections."""
    runs: list[dict[str, Any]] = []
    for line, section in zip(lines, sections):
        kind, variant = section or ("build", None)
        count = line.count("\n") + 1  # one record may hold a table of several lines
        if runs and runs[-1]["section"] == kind and runs[-1].get("variant") == variant:
            runs[-1]["lines"] += count
        else:
            runs.append({"section": kind, **({"variant": variant} if variant else {}), "lines": count})
    return {"variants": [v.name for v in variants],
            "world": [{"variant": v.name, "format": v.format} for v in world],
            "log": runs}


def _sections(text: str, runs: list[dict[str, Any]], label: str):
    """(head lines, {(section, variant): lines}, tail lines) of one part's build.log."""
    lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    if sum(r["lines"] for r in runs) != len(lines):
        raise BundleError(f"{label}: build.log has {len(lines)} lines, its manifest's partial.log counts "
                          f"{sum(r['lines'] for r in runs)}; refused")
    head, tail, tagged, at = [], [], {}, 0
    for run in runs:
        chunk = lines[at:at + run["lines"]]
        at += run["lines"]
        if run["section"] == "build":
            (tail if tagged else head).extend(chunk)
        else:
            tagged.setdefault((run["section"], run["variant"]), []).extend(chunk)
    return head, tagged, tail


def merged_log(parts: list[tuple[str, list[dict[str, Any]], str]], providers: dict[str, int],
               world: list[str]) -> str:
    """The full build's log from the parts' (log text, partial.log, label); the first part gives the
    build's own lines, ``providers`` names the part each variant's sections come from."""
    split = [_sections(text, runs, label) for text, runs, label in parts]
    head, _, tail = split[0]
    body = [line for section in SECTION_ORDER for variant in world if variant in providers
            for line in split[providers[variant]][1].get((section, variant), [])]
    return "\n".join(head + body + tail) + "\n"
