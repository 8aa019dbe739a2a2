"""The reviewed expected failures: ``expected/<route>.toml``, one reason per case.

Only crashes may be expected (a known bug, with the reason it is not fixed yet). A wrong result is
never expected: the route must be fixed or must refuse the op, so the loader rejects a ``[wrong]``
table. A refusal needs no entry: the route's own message is its reason.

    [crash]
    test_name = "why it crashes and where it is tracked"
"""
from __future__ import annotations

import tomllib
from pathlib import Path

EXPECTED_DIR = Path(__file__).parent / "expected"
KINDS = ("crash",)


def expected_path(route: str) -> Path:
    return EXPECTED_DIR / f"{route}.toml"


def load_expected(route: str) -> dict[str, str]:
    """Case name -> reason for the route's reviewed crashes (empty when the route has no list)."""
    path = expected_path(route)
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = sorted(set(data) - set(KINDS))
    if unknown:
        raise ValueError(f"{path.name}: only {', '.join(KINDS)} may be expected, found [{', '.join(unknown)}] "
                         "(a wrong result is fixed or refused, never expected)")
    entries = data.get("crash", {})
    blank = [name for name, reason in entries.items() if not str(reason).strip()]
    if blank:
        raise ValueError(f"{path.name}: every expected crash needs a reason; {', '.join(blank)} has none")
    return dict(entries)


def write_expected(route: str, crashes: dict[str, str], header: str) -> Path:
    """Rewrite the list from measured crashes (their reasons as measured: review them before committing)."""
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    lines += ["", "[crash]"]
    for name in sorted(crashes):
        reason = " ".join(crashes[name].split())[:240].replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{name} = "{reason}"')
    path = expected_path(route)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
