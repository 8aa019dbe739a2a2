"""optimize: onnxslim simplification that keeps the signature, the numbers and the input file."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import FIXTURES, fixture_model, run_in_onnxruntime
from toolchain.artifact import ModelArtifact
from toolchain.errors import InputError
from toolchain.onnxlib.model import graph_inputs, graph_outputs, load_onnx
from toolchain.parity.samples import make_inputs
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass
from toolchain.onnxlib.shapes import concrete_shapes
from toolchain.targets import load_target


def optimize(model_path, tmp_path, **options):
    return get_pass("optimize")(options).run(ModelArtifact(model_path, "onnx"), PassContext(work_dir=tmp_path / "work"))


@pytest.mark.parametrize("name", ["transformer_tiny", "lstm_tagger", "mobilenet_tiny"])
def test_simplified_model_keeps_signature_and_outputs(tmp_path, name):
    source = fixture_model(name)
    before = source.read_bytes()
    result = optimize(source, tmp_path)
    notes = result.facts["optimize"]
    assert notes["nodes_after"] <= notes["nodes_before"]
    original, slimmed = load_onnx(source), load_onnx(result.path)
    assert [s.name for s in graph_inputs(slimmed)] == [s.name for s in graph_inputs(original)]
    assert [s.name for s in graph_outputs(slimmed)] == [s.name for s in graph_outputs(original)]
    specs = graph_inputs(original)
    samples = make_inputs(specs, concrete_shapes(specs, {}, load_target("edge-desktop").shapes, fix_all=True), seed=3)
    want, got = run_in_onnxruntime(source, samples), run_in_onnxruntime(result.path, samples)
    for output in want:
        np.testing.assert_allclose(got[output], want[output], rtol=1e-5, atol=1e-5)
    assert source.read_bytes() == before


def test_shrinks_a_graph_with_shape_arithmetic_and_leaves_no_constant_nodes(tmp_path):
    notes = optimize(fixture_model("transformer_tiny"), tmp_path).facts["optimize"]
    assert notes["nodes_after"] < notes["nodes_before"]
    assert notes["constant_nodes_left"] == 0
    assert "Constant" in FIXTURES["transformer_tiny"]["op_types"]


def test_result_stays_plain_onnx_without_runtime_specific_ops(tmp_path):
    slimmed = load_onnx(optimize(fixture_model("transformer_tiny"), tmp_path).path)
    assert {n.domain for n in slimmed.graph.node} <= {"", "ai.onnx"}
    assert {o.domain for o in slimmed.opset_import} <= {"", "ai.onnx"}


def test_unknown_option_names_the_known_ones():
    with pytest.raises(InputError, match="known options: engine, max_external_bytes, skip_fusion_patterns, skip_optimizations"):
        get_pass("optimize")({"skip_fusion": ["x"]})


def test_list_options_must_be_lists():
    with pytest.raises(InputError, match="skip_optimizations"):
        get_pass("optimize")({"skip_optimizations": 3})


def test_an_input_no_node_reads_stays_in_the_signature(tmp_path):
    """onnxslim drops unused inputs; an app still feeds them, so stackc puts them back."""
    import onnx
    from onnx import TensorProto, helper

    from conftest import run_stackc

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "unused",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                               helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = tmp_path / "unused.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(model))
    done = run_stackc("prepare", model, "-o", tmp_path / "canonical.onnx")
    assert done.exit_code == 0, done.stderr
    assert [i.name for i in onnx.load(str(tmp_path / "canonical.onnx")).graph.input] == ["x", "token_type_ids"]
    built = run_stackc("build", model, "--target", "cloud", "--out", tmp_path / "out")
    assert built.exit_code == 0, built.stderr


def test_weights_one_layer_applies_several_times_are_stored_once(tmp_path):
    """ALBERT-style sharing: the same Transpose(W) folded at each use became one copy per use."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from conftest import run_in_onnxruntime, run_pass

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), "W")
    nodes, previous = [], "x"
    for layer in range(4):  # one shared layer applied four times, its weight transposed at each use
        nodes += [helper.make_node("Transpose", ["W"], [f"wt{layer}"], perm=[1, 0]),
                  helper.make_node("MatMul", [previous, f"wt{layer}"], [f"h{layer}"])]
        previous = f"h{layer}"
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
                              [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [2, 64])], [weight])
    source = tmp_path / "shared.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(source))
    result, ctx = run_pass("optimize", source, tmp_path / "work")
    optimized = onnx.load(str(result.path))
    assert sum(int(np.prod(t.dims)) for t in optimized.graph.initializer) <= 2 * 64 * 64
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 64)).astype(np.float32)}
    np.testing.assert_allclose(run_in_onnxruntime(result.path, feeds)[previous],
                               run_in_onnxruntime(source, feeds)[previous], rtol=1e-5, atol=1e-5)


def test_a_weight_shared_through_identities_by_several_matmuls_is_never_copied(tmp_path):
    """Exporters reuse a layer's weight through one Identity per use; folding those and fusing each
    MatMul+Add into a Gemm (a transposed copy per MatMul) made an 85 MB model 612 MB mid-pass."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from conftest import run_in_onnxruntime, run_pass

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array((rng.standard_normal((64, 64)) * 0.1).astype(np.float32), "W")
    bias = numpy_helper.from_array((rng.standard_normal(64) * 0.1).astype(np.float32), "b")
    nodes, previous = [], "x"
    for layer in range(4):
        nodes += [helper.make_node("Identity", ["W"], [f"w{layer}"]),
                  helper.make_node("MatMul", [previous, f"w{layer}"], [f"m{layer}"]),
                  helper.make_node("Add", [f"m{layer}", "b"], [f"a{layer}"]),
                  helper.make_node("Tanh", [f"a{layer}"], [f"h{layer}"])]
        previous = f"h{layer}"
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 64])],
                              [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [1, 8, 64])], [weight, bias])
    source = tmp_path / "shared_identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    result, _ = run_pass("optimize", source, tmp_path / "work")
    notes = result.facts["optimize"]
    assert notes["shared_weights_kept"] == {"identities_bypassed": 4, "fusion_gemm_skipped": "1 weight(s) shared by several MatMuls"}
    assert "duplicate_weights_shared" not in notes  # nothing was copied, so nothing had to be deduplicated
    optimized = onnx.load(str(result.path))
    assert [list(t.dims) for t in optimized.graph.initializer if len(t.dims) == 2] == [[64, 64]]
    assert {n.op_type for n in optimized.graph.node} == {"MatMul", "Add", "Tanh"}
    feeds = {"x": rng.standard_normal((1, 8, 64)).astype(np.float32)}
    np.testing.assert_allclose(run_in_onnxruntime(result.path, feeds)[previous],
                               run_in_onnxruntime(source, feeds)[previous], rtol=1e-5, atol=1e-6)


def test_an_unshared_matmul_weight_still_fuses_into_gemm(tmp_path):
    """Only sharing turns FusionGemm off: a model whose MatMul weights are used once keeps today's result."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from conftest import run_pass

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    graph = helper.make_graph(nodes, "once", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])], inits)
    source = tmp_path / "once.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    result, _ = run_pass("optimize", source, tmp_path / "work")
    assert "shared_weights_kept" not in result.facts["optimize"]
    assert [n.op_type for n in onnx.load(str(result.path)).graph.node] == ["Gemm"]



def test_preparation_never_imports_sympy_and_records_its_shape_inference(tmp_path):
    """onnxslim's symbolic shape inference imports sympy (0.5 s, every build); stackc uses onnx's."""
    import subprocess
    import sys

    script = ("import sys, onnx\n"
              "from toolchain.onnxlib.onnxslim_rounds import slim_to_fixed_point\n"
              f"model, settled = slim_to_fixed_point(onnx.load({str(fixture_model('transformer_tiny'))!r}))\n"
              "assert settled and len(model.graph.node) < 95\n"
              "print('sympy' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr
    assert optimize(fixture_model("resnet_tiny"), tmp_path).facts["optimize"]["shape_inference"] == "onnx (data propagation)"


@pytest.mark.parametrize("name", ["transformer_tiny", "mobilenet_tiny", "lstm_tagger"])
def test_rounds_give_the_nodes_and_weights_onnxslim_gives_with_symbolic_shapes(name):
    """What changing the shape inference engine may change: only value_info, where onnxslim's symbolic
    inference also lists the graph outputs, and each engine names or knows some dynamic dims differently.
    Run against plain ``onnxslim.slim`` (with sympy) in a process of its own."""
    import subprocess
    import sys

    import onnx

    from toolchain.onnxlib.onnxslim_rounds import slim_to_fixed_point

    path = fixture_model(name)
    script = ("import sys, onnx, onnxslim\n"
              f"sys.stdout.buffer.write(onnxslim.slim(onnx.load({str(path)!r})).SerializeToString())\n")
    theirs = onnx.ModelProto.FromString(subprocess.run([sys.executable, "-c", script], capture_output=True,
                                                       check=True).stdout)
    ours, _ = slim_to_fixed_point(onnx.load(str(path)))
    assert [n.SerializeToString() for n in ours.graph.node] == [n.SerializeToString() for n in theirs.graph.node]
    assert ([t.SerializeToString() for t in ours.graph.initializer]
            == [t.SerializeToString() for t in theirs.graph.initializer])
    outputs = {o.name for o in theirs.graph.output}
    assert _types_and_ranks(ours.graph.value_info) == _types_and_ranks(v for v in theirs.graph.value_info
                                                                        if v.name not in outputs)


def _types_and_ranks(value_infos) -> dict:
    """{name: (element type, rank)}: the dims themselves may be named or known differently by each inference."""
    return {v.name: (v.type.tensor_type.elem_type, len(v.type.tensor_type.shape.dim)) for v in value_infos}


def test_shape_inference_from_disk_matches_in_memory():
    """The path a model past protobuf's 2 GB takes (weights beside a temporary file) infers the same shapes."""
    import onnx

    from toolchain.onnxlib.onnxslim_rounds import _infer_on_disk, infer_shapes_of

    model = onnx.load(str(fixture_model("transformer_tiny")))
    in_memory = infer_shapes_of(onnx.ModelProto.FromString(model.SerializeToString()))
    on_disk = _infer_on_disk(model)
    assert ([v.SerializeToString() for v in on_disk.graph.value_info]
            == [v.SerializeToString() for v in in_memory.graph.value_info])
    assert len(on_disk.graph.value_info) > 0


def test_identical_weights_are_shared_and_weights_differing_only_past_their_first_bytes_are_not():
    from onnx import TensorProto, helper, numpy_helper

    from toolchain.passes.optimize import share_identical_initializers

    base = np.arange(1024, dtype=np.float32)
    late_change = base.copy()
    late_change[-1] = -1.0  # the same first 256 bytes, another weight
    weights = [numpy_helper.from_array(base, "a"), numpy_helper.from_array(late_change, "b"),
               numpy_helper.from_array(base.copy(), "c")]
    nodes = [helper.make_node("Add", ["x", name], [f"y_{name}"]) for name in "abc"]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024])],
                              [helper.make_tensor_value_info(f"y_{n}", TensorProto.FLOAT, [1024]) for n in "abc"],
                              weights)
    assert share_identical_initializers(graph) == {"count": 1, "bytes": 4096}
    assert [t.name for t in graph.initializer] == ["a", "b"]
    assert [list(n.input) for n in graph.node] == [["x", "a"], ["x", "b"], ["x", "a"]]
