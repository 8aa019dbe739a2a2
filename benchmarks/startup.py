"""Start-up cost: `stackc --help` against `python -c "import click"` (the floor any click CLI pays)."""
from __future__ import annotations

import sys

from .measure import median_run, stackc_command


def bench_startup(repeat: int = 5) -> dict:
    baseline = median_run([sys.executable, "-c", "import click"], repeat)
    stackc = median_run([*stackc_command(), "--help"], repeat)
    targets = median_run([*stackc_command(), "targets"], repeat)
    return {
        "import_click_s": round(baseline.seconds, 4),
        "stackc_help_s": round(stackc.seconds, 4),
        "stackc_targets_s": round(targets.seconds, 4),
        "help_over_click": round(stackc.seconds / baseline.seconds, 2),
    }


def main() -> dict:
    result = bench_startup()
    print(f"start-up: stackc --help {result['stackc_help_s']:.3f} s, stackc targets {result['stackc_targets_s']:.3f} s, "
          f"python -c 'import click' {result['import_click_s']:.3f} s: --help/click {result['help_over_click']:.2f}x")
    return result
