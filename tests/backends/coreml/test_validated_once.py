"""``validated_once``: ct.convert validates each pass pipeline's program before and after it, not after
every pass; the package is the same, and a pass that breaks the program is still refused."""
from __future__ import annotations

import hashlib
import logging
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("coremltools")

from tests.backends.coreml.test_coreml_fixtures import canonical  # noqa: E402
from toolchain.artifact import ModelArtifact  # noqa: E402
from toolchain.backends import coreml  # noqa: E402
from toolchain.backends.coreml._ct import coremltools, validated_once  # noqa: E402


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("model", ["resnet_tiny", "transformer_tiny", "lstm_tagger"])
def test_the_package_is_byte_identical_with_every_pass_validated(model, tmp_path, monkeypatch):
    source = ModelArtifact(canonical(model, tmp_path), "onnx")
    ctx = SimpleNamespace(variant=None, log=logging.getLogger("test"))
    convert = coreml.ConvertCoreML({})
    digests = {}
    for name, switch in [("once", validated_once), ("every pass", nullcontext)]:
        monkeypatch.setattr(coreml, "validated_once", switch)
        out = tmp_path / name.replace(" ", "-")
        out.mkdir()
        convert._run(source, ctx, out)
        digests[name] = _digest(out)
    assert digests["once"] == digests["every pass"]


def _program():
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))])
    def prog(x):
        # named: unnamed ops take coremltools' process-wide name counter, which later conversions see
        return mb.relu(x=mb.add(x=x, y=np.float32(1.0), name="plus_one"), name="relu")

    return ct, prog


def _breaking_pass():
    from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY, register_pass

    name = "stackc_test::drop_first_op"
    if name not in PASS_REGISTRY:
        @register_pass(namespace="stackc_test")
        class drop_first_op(AbstractGraphPass):  # noqa: N801 (coremltools names passes in snake case)
            def apply(self, prog):
                block = prog.functions["main"]
                block.operations.remove(block.operations[0])  # its output is still read by the next op

    return name


def test_a_pass_that_breaks_the_program_is_still_refused_and_validation_counts_drop(monkeypatch):
    ct, prog = _program()
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipeline, PassPipelineManager
    from coremltools.converters.mil.mil.block import Block

    broken = PassPipeline([_breaking_pass()], "stackc-test")  # caught by the validation after the pipeline
    with validated_once(), pytest.raises(ValueError, match="not visible|not defined|not in scope|visible"):
        PassPipelineManager.apply_pipeline(prog, broken)

    calls = []
    validate = Block.validate  # what Program.validate runs on each function
    monkeypatch.setattr(Block, "validate", lambda self, *a, **k: calls.append(1) or validate(self, *a, **k))
    passes = ["common::noop_elimination"] * 6
    counts = []
    for switch in (validated_once, nullcontext):
        prog = _program()[1]  # building a program validates its block too: counted apart
        calls.clear()
        with switch():
            PassPipelineManager.apply_pipeline(prog, PassPipeline(passes, "stackc-test"))
        counts.append(len(calls))
    assert counts == [2, len(passes) + 1]  # before and after the pipeline; at the start and after each pass


def _program_with_compressed_weight():
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS16)
    def prog(x):
        weight = mb.constexpr_affine_dequantize(quantized_data=np.arange(16, dtype=np.int8).reshape(4, 4),
                                                zero_point=np.int8(0), scale=np.float32(0.5), axis=0, name="weight")
        return mb.relu(x=mb.matmul(x=x, y=weight, name="product"), name="relu")

    return prog


@pytest.mark.parametrize("make", [lambda: _program()[1], _program_with_compressed_weight],
                         ids=["plain", "compressed-weight"])
def test_the_vars_that_must_not_be_replaced_are_what_coremltools_finds(make):
    def upstream(prog):  # per op, in order: the ops (by index) whose outputs its outputs must keep
        block = prog.functions["main"]
        block._propagate_nonreplaceable_vars()
        index = {id(op): i for i, op in enumerate(block.operations)}  # const names count up from program to program
        return [(op.op_type, sorted(index[id(u.op)] for v in op.outputs for u in v.nonreplaceable_vars_upstream))
                for op in block.operations]

    stock = upstream(make())
    with validated_once():
        shortcut = upstream(make())
    assert shortcut == stock
    if stock[-1][0] == "relu" and any(kind.startswith("constexpr_") for kind, _ in stock):
        assert stock[-1][1] != []  # the compressed program really has such vars


def test_a_program_is_formatted_only_where_coremltools_debug_logging_is_on():
    prog = _program()[1]
    whole = str(prog)
    assert "plus_one" in whole
    with validated_once():
        assert "plus_one" not in str(prog)
        logging.getLogger("coremltools").setLevel(logging.DEBUG)
        try:
            assert str(prog) == whole
        finally:
            logging.getLogger("coremltools").setLevel(logging.ERROR)


@pytest.mark.parametrize("value", [
    np.float32(1.5), np.float32(70000.0), np.array([], np.float32),
    np.array([[1.0, -65504.0], [3.0, 4.0]], np.float32), np.array([1.0, -65520.0, 2.0], np.float32),
    np.array([1.0, -np.inf, np.inf, 1e38, -3e38], np.float32), np.array([np.nan, 1.0], np.float32),
    np.array([np.nan, 1e5], np.float32), np.full((8, 4, 3, 3), 2.0e4, np.float32),
], ids=["scalar", "scalar-over", "empty", "fp16-max", "past-fp16", "infinite", "nan", "nan-and-over", "4-d"])
def test_the_fp16_overflow_test_answers_as_coremltools_does(value):
    ct = coremltools()
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil.passes.defs.quantization import FP16ComputePrecision

    shape = np.shape(value) or (1,)

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.add(x=x, y=value, name="sum")

    add = next(op for op in prog.functions["main"].operations if op.op_type == "add")
    stock = FP16ComputePrecision.fp16_overflow(add)
    with validated_once():
        assert FP16ComputePrecision.fp16_overflow(add) == stock
    assert FP16ComputePrecision.fp16_overflow(add) == stock
