"""Property-based fuzzing of model bytes: any mutation of a valid model either prepares or fails
with a documented exit code and one ``stackc: error:`` line, never an internal error or traceback.

Runs ``stackc prepare`` in-process (the recipe steps and the onnxruntime reference, no converters),
which is everything hostile model bytes reach before a converter sees a checked, canonical model.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import run_stackc
from tests.test_hostile_inputs import tiny_model

VALID = tiny_model().SerializeToString()
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7}


@st.composite
def mutated_model(draw) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[position:position + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[position:]
        elif kind == "duplicate":
            data[position:position] = data[position:position + draw(st.integers(1, 64))]
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(mutated_model())
def test_mutated_model_bytes_prepare_or_fail_with_one_clear_line(data):
    with tempfile.TemporaryDirectory(prefix="stackc-fuzz-") as work:
        model = Path(work) / "model.onnx"
        model.write_bytes(data)
        invocation = run_stackc("prepare", model, "--out", Path(work) / "prepared.onnx", "--target", "edge-desktop",
                                "--quiet")
    context = f"exit {invocation.exit_code}\nstderr: {invocation.stderr}\nexception: {invocation.exception!r}"
    assert invocation.exception is None, context
    assert invocation.exit_code in DOCUMENTED, context
    assert "Traceback" not in invocation.stderr, context
    if invocation.exit_code != 0:
        assert len(invocation.error_lines) == 1, context


@st.composite
def mutated_fields(draw) -> bytes:
    """Structure-aware mutations: a well-formed protobuf whose fields say absurd things."""
    model = tiny_model()
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(["opset", "ir", "dim", "op", "elem", "raw", "pads", "output_dim"]))
        if field == "opset":
            model.opset_import[0].version = draw(st.integers(-3, 40))
        elif field == "ir":
            model.ir_version = draw(st.integers(-2, 20))
        elif field == "dim":
            dims = model.graph.input[0].type.tensor_type.shape.dim
            # small or absurd, not merely big: a 500 MB sample would only make the test slow
            dims[draw(st.integers(0, 3))].dim_value = draw(st.one_of(st.integers(-2, 64), st.integers(2**31, 2**62)))
        elif field == "op":
            model.graph.node[draw(st.integers(0, 1))].op_type = draw(
                st.sampled_from(["Relu", "Conv", "Gemm", "Foo", "", "Softmax", "If", "Loop", "Identity", "Sigmoid"]))
        elif field == "elem":
            model.graph.input[0].type.tensor_type.elem_type = draw(st.integers(0, 30))
        elif field == "raw":
            model.graph.initializer[0].raw_data = draw(st.binary(max_size=600))
        elif field == "pads":
            del model.graph.node[0].attribute[0].ints[:]
            model.graph.node[0].attribute[0].ints.extend(draw(st.lists(st.integers(-9, 9), max_size=6)))
        elif field == "output_dim":
            model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = draw(st.integers(-5, 50))
    return model.SerializeToString()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(mutated_fields())
def test_models_with_absurd_fields_prepare_or_fail_with_one_clear_line(data):
    test_mutated_model_bytes_prepare_or_fail_with_one_clear_line.hypothesis.inner_test(data)
