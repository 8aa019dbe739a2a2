"""The reference interpreter drops each value after its last reader: a run holds the live values, not
every activation, and a value read again later (a skip connection) is still there when needed."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

pytest.importorskip("coremltools")

from toolchain.backends.coreml._ct import coremltools  # noqa: E402
from toolchain.backends.coreml.interpreter import Program  # noqa: E402

SHAPE = (1, 256, 1024)  # 1 MiB of fp32 per activation
DEPTH = 24


def _chain_package(folder):
    """x -> sin -> cos -> sin ... (DEPTH ops) -> + x: every activation 1 MiB, x read at the very end."""
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=SHAPE)], opset_version=ct.target.iOS16)
    def prog(x):
        y = x
        for i in range(DEPTH):
            y = (mb.sin if i % 2 == 0 else mb.cos)(x=y, name=f"step{i}")
        return mb.add(x=y, y=x, name="out")

    model = ct.convert(prog, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
                       minimum_deployment_target=ct.target.iOS16, skip_model_load=True)
    path = folder / "chain.mlpackage"
    model.save(str(path))
    return path


def test_a_run_holds_the_live_values_not_every_activation(tmp_path):
    program = Program(_chain_package(tmp_path))
    assert sum(op.type in ("sin", "cos") for op in program.block.operations) == DEPTH  # nothing fused away
    x = np.random.default_rng(0).uniform(-1, 1, SHAPE).astype(np.float32)
    expected = x
    for i in range(DEPTH):
        expected = (np.sin if i % 2 == 0 else np.cos)(expected)
    expected = expected + x

    tracemalloc.start()
    try:
        outputs = program.run({program.inputs[0][0]: x})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    np.testing.assert_allclose(outputs["out"], expected, rtol=1e-5, atol=1e-6)
    activation = x.nbytes
    assert peak < 8 * activation  # every activation kept would be DEPTH + 1 of them (25 MiB)
