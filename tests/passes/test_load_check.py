"""load.check: the ONNX checker, shape inference, and the IR / opset / op report, without touching its input."""
from __future__ import annotations

import pytest

from conftest import FIXTURES, assert_user_error, fixture_model, run_stackc
from toolchain.artifact import ModelArtifact
from toolchain.errors import InputError
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass


def run_load_check(model_path, tmp_path, **options):
    ctx = PassContext(work_dir=tmp_path / "work")
    return get_pass("load.check")(options).run(ModelArtifact(model_path, "onnx"), ctx), ctx


@pytest.mark.parametrize("name", ["resnet_tiny", "transformer_tiny", "detector_tiny"])
def test_reports_ir_opsets_and_op_types_of_the_model(tmp_path, name):
    result, ctx = run_load_check(fixture_model(name), tmp_path)
    report = result.facts["load.check"]
    assert report["ir_version"] == FIXTURES[name]["ir_version"]
    assert report["opsets"] == FIXTURES[name]["opset_import"]
    assert sorted(report["op_types"]) == FIXTURES[name]["op_types"]
    assert report["nodes"] == sum(report["op_types"].values())
    assert ctx.records[-1]["id"] == "load.check" and ctx.records[-1]["notes"] == report


def test_writes_a_new_model_under_its_work_folder_and_leaves_the_input_alone(tmp_path):
    source = fixture_model("gru_audio")
    before = source.read_bytes()
    result, _ = run_load_check(source, tmp_path)
    assert result.path != source and (tmp_path / "work") in result.path.parents and result.path.is_file()
    assert source.read_bytes() == before


def test_shape_inference_fills_intermediate_shapes_unless_switched_off(tmp_path):
    import onnx

    inferred, _ = run_load_check(fixture_model("resnet_tiny"), tmp_path / "a")
    plain, _ = run_load_check(fixture_model("resnet_tiny"), tmp_path / "b", infer_shapes=False)
    assert len(onnx.load(str(inferred.path)).graph.value_info) > len(onnx.load(str(plain.path)).graph.value_info)


def _invalid_model(path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["not_defined_anywhere"], ["y"])], "bad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_a_model_the_checker_rejects_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="ONNX checker rejects"):
        run_load_check(_invalid_model(tmp_path / "checker-rejects.onnx"), tmp_path)


def test_build_of_a_model_the_checker_rejects_exits_3_in_one_line(tmp_path):
    model = _invalid_model(tmp_path / "checker-rejects.onnx")
    assert_user_error(run_stackc("build", model, "-t", "edge-desktop", "--out", tmp_path / "out"), 3, "checker")


def test_a_file_already_checked_is_not_checked_again_until_it_changes(tmp_path, monkeypatch):
    """A build checks its source when it loads it and again in load.check: the second time is skipped,
    but a rewritten file is checked anew, and a bad one is still refused."""
    import shutil

    import onnx

    from toolchain.onnxlib.model import check_model, load_graph

    calls = []
    real = onnx.checker.check_model
    monkeypatch.setattr(onnx.checker, "check_model", lambda m, *a, **k: (calls.append(m), real(m, *a, **k))[1])
    path = tmp_path / "model.onnx"
    shutil.copy(fixture_model("resnet_tiny"), path)
    check_model(load_graph(path), path)
    check_model(load_graph(path), path)
    assert len(calls) == 1
    _invalid_model(path)  # rewritten in place: another size and modification time
    with pytest.raises(InputError, match="ONNX checker rejects"):
        check_model(load_graph(path), path)
    assert len(calls) == 2


@pytest.mark.parametrize("reduce_range, portable", [(False, False), (True, True)])
def test_an_already_int8_source_is_described_for_the_cpus_its_kernels_depend_on(tmp_path, reduce_range, portable):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = tmp_path / "int8-source.onnx"
    quantize_dynamic(str(fixture_model("transformer_tiny")), str(source), weight_type=QuantType.QInt8,
                     reduce_range=reduce_range, op_types_to_quantize=["MatMul"])
    result, _ = run_load_check(source, tmp_path)
    kernels = result.facts["load.check"]["int8_kernels"]
    assert kernels["integer_weights"] > 0 and kernels["cpu_independent"] is portable
    if not portable:
        assert kernels["full_range_weights"] > 0 and "MatMulInteger" in kernels["examples"][0]


def test_a_float_source_has_no_int8_kernel_note(tmp_path):
    result, _ = run_load_check(fixture_model("resnet_tiny"), tmp_path)
    assert "int8_kernels" not in result.facts["load.check"]
