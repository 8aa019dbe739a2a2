"""The ``stackc`` command: the click group and the list of its commands.

The commands live in ``toolchain/commands/`` (one module per family); ``toolchain/cli_boundary.py``
is the one place errors become exit codes:
0 ok, 1 internal error (a bug: please report it), 2 usage, 3 bad input or config,
4 missing dependency, 5 pass failed, 6 parity failed, 7 bundle or verify failed, 8 no artifact fits
the device, 9 registry unreachable or refused the request, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""
from __future__ import annotations

import click

from . import __version__
from .cli_boundary import StackcGroup
from .batch.command import batch
from .commands import bundles, info, making, registry
from .report.command import report

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input or config, 4 missing dependency, "
    "5 pass failed, 6 parity failed, 7 bundle or verify failed, 8 no artifact fits the device, "
    "9 registry unreachable or refused the request, 130 interrupted (SIGINT), 143 terminated (SIGTERM)."
)


@click.group(cls=StackcGroup, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="stackc")
@click.option("--debug", is_flag=True, help="Show the Python traceback of an error.")
def main(debug: bool) -> None:
    """stackc: compile one model for every place it runs, with proven parity."""


# -- the commands (one line each; a new command module adds its command here) --------------------------
for command in (
    info.targets, info.recipes, info.passes, info.ops,
    making.prepare, making.build,
    bundles.inspect, bundles.verify, bundles.select, bundles.check, bundles.keygen, bundles.sign, bundles.merge,
    registry.push, registry.pull,
    batch, report,
):
    main.add_command(command)


if __name__ == "__main__":
    main()
