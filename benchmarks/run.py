"""``make bench``: each section prints its figures and writes the same figures as JSON under out/bench/.

Sections are modules of this package with a ``main()``; add yours to SECTIONS.
"""
from __future__ import annotations

import importlib
import sys

SECTIONS = ("precision",)


def main(argv: list[str]) -> int:
    chosen = argv or list(SECTIONS)
    for name in chosen:
        if name not in SECTIONS:
            print(f"unknown bench section '{name}' (known: {', '.join(SECTIONS)})", file=sys.stderr)
            return 2
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
