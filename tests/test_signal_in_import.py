"""A SIGINT that lands inside the import system's own code is not raised there (it came out as a traceback
in CI) but honoured by the command's next step: the build still exits 130 with one line."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = r'''
import signal, sys
from click.testing import CliRunner
from toolchain import cli_boundary, process_tree

frame = sys._getframe()
fake = compile("f = sys._getframe()", "<frozen importlib._bootstrap>", "exec")
scope = {"sys": sys}
exec(fake, scope)
cli_boundary._on_signal(signal.SIGINT, scope["f"])  # returns: no exception inside importlib
assert process_tree.interrupted() is KeyboardInterrupt
try:
    cli_boundary._on_signal(signal.SIGINT, frame)
except KeyboardInterrupt:
    print("raised outside importlib")
'''


def test_a_signal_inside_importlib_is_left_to_the_next_step_and_one_outside_is_raised():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "raised outside importlib"


def test_a_command_that_finishes_after_a_deferred_interrupt_exits_130_with_one_line():
    script = r'''
import signal, sys
import click
from toolchain import cli_boundary
from toolchain.cli import main

scope = {"sys": sys}
exec(compile("f = sys._getframe()", "<frozen importlib._bootstrap>", "exec"), scope)
run_command = click.Group.invoke


def interrupted_inside_importlib(self, ctx):  # the handler ran inside importlib while the command ran
    cli_boundary._on_signal(signal.SIGINT, scope["f"])
    return run_command(self, ctx)


click.Group.invoke = interrupted_inside_importlib
main(["targets"])
'''
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert done.stderr.strip() == "stackc: interrupted", done.stderr
