"""Progress people expect from a batch: on a terminal (a pty here) rich's bar over the tasks; plain lines
when stderr is not a terminal; nothing with -q or --json. (A build's own progress: toolchain/progress.py.)"""
from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "fixtures" / "models" / "resnet_tiny.onnx"
STACKC = [sys.executable, "-c", "from toolchain.cli import main; main()"]
ENV = {**os.environ, "STACKC_CACHE_CODE_ID": "tests", "COLUMNS": "120", "TERM": "xterm-256color"}


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run stackc with stderr on a pseudo-terminal; (exit code, everything the terminal received)."""
    leader, follower = pty.openpty()
    child = subprocess.Popen([*STACKC, *args], stdout=subprocess.DEVNULL, stderr=follower, cwd=ROOT, env=ENV)
    os.close(follower)
    received = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(leader)
    return child.wait(timeout=600), received.decode(errors="replace")


def test_batch_shows_a_progress_bar_on_a_terminal_plain_lines_elsewhere_and_nothing_when_quiet(tmp_path):
    shutil.copy(MODEL, tmp_path / "resnet_tiny.onnx")
    job = tmp_path / "job.toml"
    job.write_text('targets = ["cloud"]\n[[models]]\npath = "resnet_tiny.onnx"\nvariants = ["onnx-fp32"]\n')
    code, screen = _on_a_terminal("batch", str(job), "-o", str(tmp_path / "o"))
    assert code == 0, screen[-2000:]
    assert "\x1b[" in screen and "resnet_tiny.onnx x cloud: built" in screen and "1/1" in screen

    plain = subprocess.run([*STACKC, "batch", str(job), "-o", str(tmp_path / "o")], capture_output=True, text=True,
                           cwd=ROOT, env=ENV, timeout=600)
    assert plain.returncode == 0 and "\x1b[" not in plain.stderr
    assert "stackc: batch: [1/1] resnet_tiny.onnx x cloud: cached" in plain.stderr
    for flag in ("-q", "--json"):
        quiet = subprocess.run([*STACKC, "batch", str(job), "-o", str(tmp_path / "o"), flag], capture_output=True,
                               text=True, cwd=ROOT, env=ENV, timeout=600)
        assert quiet.returncode == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout)["summary"] == {"built": 0, "cached": 1, "failed": 0}
    assert json.loads(quiet.stdout)["ok"] is True
