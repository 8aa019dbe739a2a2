"""upgrade.ir: IR-3 files with weights listed as graph inputs become IR >= 4 with only real inputs."""
from __future__ import annotations

import numpy as np
import onnx
from conftest import run_in_onnxruntime, run_pass
from fixtures.trap_models import ir3_initializer_inputs


def test_ir3_model_becomes_ir4_and_its_weights_stop_being_graph_inputs(tmp_path):
    source = ir3_initializer_inputs(tmp_path / "ir3.onnx")
    raw = onnx.load(str(source))
    assert raw.ir_version == 3 and len(raw.graph.input) == 6  # a naive tool would feed 5 random weights

    result, ctx = run_pass("upgrade.ir", source, tmp_path / "work")

    upgraded = onnx.load(str(result.path))
    onnx.checker.check_model(upgraded)
    assert upgraded.ir_version == 4
    assert [i.name for i in upgraded.graph.input] == ["x"]
    assert ctx.records[-1]["notes"] == {"ir_before": 3, "ir_after": 4, "initializer_inputs_dropped": 5}
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(run_in_onnxruntime(result.path, {"x": x})["y"], run_in_onnxruntime(source, {"x": x})["y"])


def test_modern_ir_keeps_its_version_but_loses_initializer_inputs(tmp_path):
    model = onnx.load(str(ir3_initializer_inputs(tmp_path / "ir3.onnx")))
    model.ir_version = 7
    onnx.save(model, str(tmp_path / "ir7.onnx"))

    result, _ = run_pass("upgrade.ir", tmp_path / "ir7.onnx", tmp_path / "work")

    upgraded = onnx.load(str(result.path))
    assert upgraded.ir_version == 7
    assert [i.name for i in upgraded.graph.input] == ["x"]
    assert not tmp_path.joinpath("ir7.onnx").read_bytes() == result.path.read_bytes()
