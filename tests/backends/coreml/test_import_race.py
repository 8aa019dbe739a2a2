"""Two Core ML variants convert and run in parallel threads: coremltools must be imported once, fully."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("coremltools")

SCRIPT = """
import threading
from toolchain.backends.coreml._ct import coremltools
errors = []
start = threading.Barrier(4)
def use():
    start.wait()
    try:
        coremltools().utils.load_spec  # a half-imported module has no 'utils' yet
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=use) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(errors or "ok")
"""


def test_threads_importing_coremltools_at_once_all_get_the_whole_module():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "ok", done.stdout


def test_coremltools_is_imported_without_the_frameworks_stackc_does_not_use():
    """TensorFlow, torch, scikit-learn and scipy stay out of a Core ML worker's warm-up (seconds of
    CPU, and 0.14 s for scipy.sparse alone); each can still be imported afterwards."""
    script = ("import sys; from toolchain.backends.coreml._ct import coremltools; coremltools(); "
              "print(sorted(m for m in ('tensorflow', 'torch', 'sklearn', 'scipy') if m in sys.modules)); "
              "import scipy.special; print(scipy.special.erf(0.5) > 0.5)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]", "True"], done.stdout
