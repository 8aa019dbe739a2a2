"""optimize's two engines (passes/optimize.py): ONNX Runtime's basic level where every format the
model feeds fuses patterns at load (cloud), onnxslim elsewhere, and onnxslim for what ONNX Runtime
cannot load. Each engine's canonical model must compute what the source computes."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import build_bundle, fixture_model, run_in_onnxruntime, run_stackc, shipped_target_data, write_toml
from toolchain.app.prepare import PrepareRequest, prepare
from toolchain.passes.optimize import Options, choose_engine
from toolchain.plugins import load


def _optimize_notes(result) -> dict:
    return next(s for s in result.steps if s["id"] == "optimize")["notes"]


def test_auto_picks_onnxruntime_only_where_every_format_fuses_at_load():
    load()
    assert choose_engine("auto", ("onnx", "openvino"))[0] == "onnxruntime"
    assert choose_engine("auto", ("ort",))[0] == "onnxruntime"
    assert choose_engine("auto", ("onnx", "openvino", "coreml"))[0] == "onnxslim"
    assert choose_engine("auto", ("tflite",))[0] == "onnxslim"
    assert choose_engine("auto", ())[0] == "onnxslim"  # stackc prepare without --target: consumers unknown
    assert choose_engine("onnxslim", ("onnx",)) == ("onnxslim", 'the recipe sets engine = "onnxslim"')


def test_an_unknown_engine_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="known values: auto, onnxslim, onnxruntime"):
        Options(engine="onnxsim")


@pytest.mark.parametrize("name", ["resnet_tiny", "mobilenet_tiny", "transformer_tiny", "lstm_tagger", "gru_audio",
                                  "detector_tiny"])
def test_cloud_prepares_with_onnxruntime_keeping_the_sources_opsets_and_outputs(tmp_path, name):
    source = fixture_model(name)
    result = prepare(PrepareRequest(source, tmp_path / "canonical.onnx", target="cloud"))
    notes = _optimize_notes(result)
    assert notes["engine"] == "onnxruntime basic level", notes
    assert sorted(notes["rewrites_left_off"]) == ["ConstantSharing", "MatMulAddFusion"]
    assert result.parity.passed
    before, after = onnx.load(source), onnx.load(result.path)
    assert sorted((o.domain, o.version) for o in after.opset_import) == \
        sorted((o.domain, o.version) for o in before.opset_import)  # not ONNX Runtime's nine extra domains
    assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]


def test_a_dynamic_transformer_prepared_by_onnxruntime_holds_at_other_batch_and_sequence_sizes(tmp_path):
    """Cloud keeps dims dynamic: a shape folded for the parity samples' sizes alone would show at others."""
    source = fixture_model("transformer_tiny")
    result = prepare(PrepareRequest(source, tmp_path / "canonical.onnx", target="cloud"))
    assert _optimize_notes(result)["engine"] == "onnxruntime basic level"
    assert len(onnx.load(result.path).graph.node) < len(onnx.load(source).graph.node)
    rng = np.random.default_rng(3)
    for batch, seq in ((1, 16), (3, 7), (2, 33)):
        feeds = {"input_ids": rng.integers(0, 50, (batch, seq)).astype(np.int64),
                 "attention_mask": np.ones((batch, seq), np.int64)}
        expected, got = run_in_onnxruntime(source, feeds), run_in_onnxruntime(result.path, feeds)
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-5)


def test_edge_worlds_keep_onnxslim_and_its_fused_operators(tmp_path):
    result = prepare(PrepareRequest(fixture_model("resnet_tiny"), tmp_path / "canonical.onnx", target="edge-mobile"))
    assert _optimize_notes(result)["engine"] == "onnxslim"


def _qdq_model(path=None):
    """Q/DQ as a quantizer writes them, with the three shapes ONNX Runtime's basic level would
    rewrite: a DequantizeLinear read by two nodes, a Transpose between Q/DQ pairs, and two
    back-to-back pairs."""
    scale, zero = numpy_helper.from_array(np.float32(0.05), "scale"), numpy_helper.from_array(np.int8(0), "zero")
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"]),
         helper.make_node("Transpose", ["dq"], ["t"], perm=[1, 0]),
         helper.make_node("Relu", ["t"], ["r"]),
         helper.make_node("Sigmoid", ["dq"], ["z"]),
         helper.make_node("QuantizeLinear", ["r", "scale", "zero"], ["q2"]),
         helper.make_node("DequantizeLinear", ["q2", "scale", "zero"], ["dq2"]),
         helper.make_node("QuantizeLinear", ["dq2", "scale", "zero"], ["q3"]),
         helper.make_node("DequantizeLinear", ["q3", "scale", "zero"], ["y"])],
        "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [8, 4])], [scale, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if path is not None:
        onnx.save(model, path)
    return model


def _wiring(model) -> list:
    return sorted((n.op_type, tuple(n.input), tuple(n.output)) for n in model.graph.node)


def test_a_quantized_source_keeps_its_quantization_as_written_and_the_manifest_says_which_rewrites_are_off(tmp_path):
    source = tmp_path / "qdq.onnx"
    _qdq_model(source)
    result = prepare(PrepareRequest(source, tmp_path / "canonical.onnx", target="cloud"))
    notes = _optimize_notes(result)
    assert notes["engine"] == "onnxruntime basic level"
    assert {"QDQPropagationTransformer", "TransposeOptimizer", "DoubleQDQPairsRemover"} <= set(notes["rewrites_left_off"])
    assert _wiring(onnx.load(result.path)) == _wiring(onnx.load(source))
    feeds = {"x": np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)}
    expected, got = run_in_onnxruntime(source, feeds), run_in_onnxruntime(result.path, feeds)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


def test_the_dequantize_copies_onnxruntime_makes_are_merged_back_where_the_first_one_stood():
    from toolchain.onnxlib.ort_basic import optimize_basic

    optimized = optimize_basic(_qdq_model())
    dequantize = [n for n in optimized.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dequantize) == 3 and [n.input[0] for n in dequantize].count("q") == 1
    seen = {"x", "scale", "zero"}
    for node in optimized.graph.node:  # still in topological order
        assert set(node.input) <= seen
        seen.update(node.output)


@pytest.mark.parametrize("rewrite", ["QDQPropagationTransformer", "TransposeOptimizer", "DoubleQDQPairsRemover"])
def test_each_rewrite_left_off_in_a_quantized_graph_would_move_its_quantization(monkeypatch, rewrite):
    """Switched back on one at a time, each changes the source's Q/DQ nodes, or leaves copies the
    merge refuses: none of the three is left off for nothing."""
    from toolchain.onnxlib import ort_basic

    monkeypatch.setattr(ort_basic, "DISABLED_IN_QDQ", {k: v for k, v in ort_basic.DISABLED_IN_QDQ.items() if k != rewrite})
    source = _qdq_model()
    try:
        optimized = ort_basic.optimize_basic(source)
    except ort_basic.NotOptimized as e:
        assert "DequantizeLinear" in str(e)
    else:
        assert _wiring(optimized) != _wiring(source)


def test_a_model_onnxruntime_cannot_load_is_refused_with_its_reason():
    from toolchain.onnxlib.ort_basic import NotOptimized, optimize_basic

    graph = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], domain="org.example")], "custom",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("org.example", 1)])
    with pytest.raises(NotOptimized, match="ONNX Runtime cannot load it"):
        optimize_basic(model)


def test_worlds_whose_engines_differ_do_not_share_one_preparation(tmp_path):
    """A static model built for cloud (ONNX Runtime's engine) and for a world with Core ML (onnxslim's):
    each world's manifest records the engine its own formats call for."""
    folder = tmp_path / "w"
    folder.mkdir()
    worlds = {}
    for name, formats in (("cloud", ("onnx",)), ("edge-desktop", ("onnx", "coreml"))):
        data = shipped_target_data(name)
        data["variants"] = [v for v in data["variants"] if v["format"] in formats]
        worlds[name] = write_toml(folder / f"{name}.toml", data)
    done = run_stackc("build", fixture_model("resnet_tiny"), "-t", worlds["cloud"], "-t", worlds["edge-desktop"],
                      "-o", tmp_path / "out", "--json")
    assert done.exit_code == 0, done.stderr
    assert "[shared] canonical model" not in done.stderr
    engines = {}
    for name in worlds:
        manifest = (tmp_path / "out" / f"resnet_tiny-0.1.0-{name}" / "manifest.json").read_text()
        steps = json.loads(manifest)["preparation"]["steps"]
        engines[name] = next(s for s in steps if s["id"] == "optimize")["notes"]["engine"]
    assert engines == {"cloud": "onnxruntime basic level", "edge-desktop": "onnxslim"}


def test_a_partial_build_prepares_with_its_whole_worlds_engine(tmp_path):
    """CI runners that each build some variants merge their parts into one bundle: every part must
    prepare the canonical model the full build prepares, so the engine follows the world's formats."""
    manifest = build_bundle(fixture_model("resnet_tiny"), "edge-desktop", tmp_path / "out",
                            "--variants", "onnx-fp32")["manifest"]
    notes = next(s for s in manifest["preparation"]["steps"] if s["id"] == "optimize")["notes"]
    assert [a["variant"] for a in manifest["artifacts"]] == ["onnx-fp32"]
    assert notes["engine"] == "onnxslim"  # the world's Core ML variant asks for it, built here or not


def _conv_bn_with_large_weights() -> onnx.ModelProto:
    """Conv (a 64x64x3x3 weight, 144 KiB) + BatchNormalization, which the basic level fuses, then a
    Resize whose scales ONNX Runtime's shape inference must read as bytes."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((64, 64, 3, 3)).astype(np.float32), "w")]
    for name, value in (("scale", 1.0 + rng.random(64)), ("bias", rng.random(64)), ("mean", rng.random(64)),
                        ("var", 1.0 + rng.random(64))):
        weights.append(numpy_helper.from_array(value.astype(np.float32), name))
    weights.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"]),
             helper.make_node("Resize", ["b", "", "scales"], ["y"], mode="nearest")]
    graph = helper.make_graph(nodes, "conv_bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 16, 16])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _basic_level_whole(model: onnx.ModelProto, tmp_path) -> onnx.ModelProto:
    """The basic level given the whole serialized model, as before weights were lent."""
    from toolchain.onnxlib import ort_basic

    written = tmp_path / "whole" / "optimized.onnx"
    written.parent.mkdir()
    ort_basic._optimize(model, written, list(ort_basic.DISABLED), lend_weights=False)
    result = ort_basic._load_written(written)
    ort_basic._keep_opsets(model, result)
    return result


def test_weights_lent_to_onnxruntime_give_the_bytes_the_whole_model_gives(tmp_path):
    from toolchain.onnxlib.ort_basic import optimize_basic

    model = _conv_bn_with_large_weights()
    lent = optimize_basic(model)
    assert [n.op_type for n in lent.graph.node] == ["Conv", "Resize"]  # BatchNormalization fused into the lent weight
    assert lent.SerializeToString() == _basic_level_whole(model, tmp_path).SerializeToString()
    # ONNX Runtime wrote the fused weight beside the model; it comes back inline, unmarked
    assert not any(t.HasField("data_location") or t.HasField("doc_string") or t.external_data
                   for t in lent.graph.initializer)


def test_a_lent_weight_onnxruntime_must_read_as_bytes_falls_back_to_the_whole_model(tmp_path, monkeypatch):
    from toolchain.onnxlib import ort_basic, shape_inference

    lend_all = shape_inference.weightless
    monkeypatch.setattr(shape_inference, "weightless", lambda model: lend_all(model, at_bytes=1))  # the Resize scales too
    model = _conv_bn_with_large_weights()
    with pytest.raises(Exception, match="external"):
        ort_basic._optimize(model, tmp_path / "lent.onnx", list(ort_basic.DISABLED), lend_weights=True)
    assert ort_basic.optimize_basic(model).SerializeToString() == _basic_level_whole(model, tmp_path).SerializeToString()
