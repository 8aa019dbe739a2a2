"""``stackc inspect`` as text: per artifact its floors, parity, and the I/O table an app developer codes against."""
from __future__ import annotations

import click


def io_rows(io: dict) -> list[list[str]]:
    """One row per tensor: direction, name, dtype, shape, layout, int8 scale / zero point, source name."""
    rows = []
    for direction in ("inputs", "outputs"):
        for t in io.get(direction, []):
            quant = f"scale {t['scale']:.6g}, zero point {t['zero_point']}" if "scale" in t else ""
            shape = "?" if t.get("shape") is None else "[" + ", ".join(str(d) for d in t["shape"]) + "]"
            source = f"source: {t['source_name']}" if t.get("source_name") else ""
            rows.append([direction[:-1] if direction == "inputs" else "output", t["name"], t["dtype"], shape,
                         t.get("layout", ""), quant, source])
    return rows


def print_io_table(io: dict | None, indent: str = "    ") -> None:
    if io is None:
        click.echo(f"{indent}I/O: not recorded (a bundle from before stackc recorded it, or a format without a reader)")
        return
    rows = io_rows(io)
    click.echo(f"{indent}I/O:")
    indent += "  "
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths) if width]
        click.echo(indent + "  ".join(cells).rstrip())
    if io.get("ships_with"):
        click.echo(f"{indent}ships with: {', '.join(io['ships_with'])} (keep next to the main file: it is loaded with it)")


def _conversion_line(conversion: dict) -> str:
    """The conversion record's plain facts (one level down too) in one short line; the rest is in --json."""
    def plain(value) -> bool:
        return isinstance(value, (str, int, float, bool))

    items = [f"{k}={v}" for k, v in conversion.items() if plain(v)]
    items += [f"{k}.{k2}={v2}" for k, v in conversion.items() if isinstance(v, dict) for k2, v2 in v.items() if plain(v2)]
    return ", ".join(items[:6]) + (f" (+{len(items) - 6} more in --json)" if len(items) > 6 else "")


def print_manifest(m: dict) -> None:
    click.echo(f"{m['bundle']['name']} (version {m['bundle']['version']}, target {m['target']['name']})")
    src = m["source"]
    click.echo(f"source: {src['file']} sha256 {src['sha256'][:16]}… IR {src['ir_version']} opsets {src['opsets']}")
    for artifact in m["artifacts"]:
        parity = artifact["parity"]
        worst = max((o.get("max_abs") or 0.0 for o in parity["outputs"]), default=0.0)
        click.echo(f"- {artifact['variant']}: {artifact['path']} [{artifact['format']}, {artifact['precision']}, "
                   f"{artifact['size']} B]")
        click.echo(f"    runtime: {artifact['runtime']['name']} >= {artifact['runtime']['min_version']}")
        click.echo(f"    accelerator APIs: {', '.join(artifact['accelerator_apis'])}")
        click.echo(f"    OS: {', '.join(artifact['os'])}")
        if artifact.get("platforms"):
            from ..compat import parse_platforms

            described = [p.describe() for p in parse_platforms(artifact["platforms"], "manifest")]
            click.echo(f"    platforms: {'; '.join(described)}")
        if artifact["conversion"]:
            click.echo(f"    conversion: {_conversion_line(artifact['conversion'])}")
        weak = f"; weak evidence: {', '.join(parity['weak_outputs'])}" if parity.get("evidence") == "weak" else ""
        click.echo(f"    parity: {'pass' if parity['passed'] else 'FAIL'} ({len(parity['outputs'])} outputs, "
                   f"max abs {worst:.3g}; {parity['measured_with']}{weak})")
        print_io_table(artifact.get("io"))
