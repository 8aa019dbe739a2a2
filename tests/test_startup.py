"""Cheap to start: importing the CLI and the light commands load none of the heavy runtimes or converters."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

HEAVY = ("onnxruntime", "openvino", "tensorflow", "onnx2tf", "coremltools", "torch", "tf_keras", "nncf")

PROBE = """
import json, sys
{body}
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY=" + json.dumps(heavy), file=sys.__stderr__)
"""

COMMAND = """
from toolchain.cli import main
try:
    main({args!r}, prog_name="stackc")
except SystemExit as e:
    assert not e.code, e.code
"""


def heavy_modules_after(body: str) -> list[str]:
    process = subprocess.run([sys.executable, "-c", PROBE.format(body=body, heavy=HEAVY)], capture_output=True,
                             text=True, cwd=REPO, timeout=120)
    marker = [line for line in process.stderr.splitlines() if line.startswith("HEAVY=")]
    assert process.returncode == 0 and marker, process.stderr
    return json.loads(marker[0][len("HEAVY="):])


def test_importing_the_cli_loads_no_heavy_library():
    assert heavy_modules_after("import toolchain.cli") == []


@pytest.mark.parametrize("args", [["--help"], ["targets"], ["targets", "--json"], ["build", "--help"]])
def test_light_commands_load_no_heavy_library(args):
    assert heavy_modules_after(COMMAND.format(args=args)) == []


def test_listing_passes_and_recipes_loads_no_heavy_library():
    """Every pass and backend module is imported here: each must keep its heavy imports inside functions."""
    assert heavy_modules_after(COMMAND.format(args=["passes"]) + COMMAND.format(args=["recipes"])) == []
