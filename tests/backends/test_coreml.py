"""Core ML backend end to end: the shipped edge-mobile Core ML variant builds a bundle whose
.mlpackage loads with coremltools, declares its deployment target, is fully checksummed, and
whose parity (through the MIL reference interpreter on Linux) breaks when a weight changes.

The world used is edge-mobile restricted to its Core ML variant, so the test pays for one converter.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import (assert_user_error, build_bundle, fixture_model, run_in_onnxruntime, run_pass, run_stackc,
                      shipped_target_data, write_toml)
from bundle_helpers import manifest_of, refresh_artifact_digests, reseal
from toolchain.artifact import ModelArtifact
from toolchain.errors import InputError, ParityError, PassError

VARIANT = "coreml-fp16"


@pytest.fixture(scope="module")
def coreml_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("coreml-bundle")
    world = shipped_target_data("edge-mobile")
    world["variants"] = [v for v in world["variants"] if v["format"] == "coreml"]
    world["name"] = "edge-mobile-coreml"
    target = write_toml(out / "edge-mobile-coreml.toml", world)
    result = build_bundle(fixture_model("resnet_tiny"), target, out / "bundles")
    return Path(result["bundle"]), result["manifest"]


def _entry(manifest):
    return next(a for a in manifest["artifacts"] if a["variant"] == VARIANT)


def test_bundle_ships_the_mlpackage_and_checksums_every_file_inside_it(coreml_bundle):
    bundle, manifest = coreml_bundle
    entry = _entry(manifest)
    package = bundle / entry["path"]
    assert package.name == "model.mlpackage" and package.is_dir()
    inside = sorted(p.relative_to(bundle).as_posix() for p in package.rglob("*") if p.is_file())
    assert "Data/com.apple.CoreML/weights/weight.bin" in "\n".join(inside)
    assert sorted(f["path"] for f in entry["files"]) == inside
    assert run_stackc("verify", bundle).exit_code == 0


def test_mlpackage_loads_with_coremltools_and_declares_its_deployment_target(coreml_bundle):
    import coremltools as ct

    bundle, manifest = coreml_bundle
    entry = _entry(manifest)
    package = bundle / entry["path"]
    spec = ct.utils.load_spec(str(package))
    assert spec.WhichOneof("Type") == "mlProgram"
    assert spec.specificationVersion == ct.target.iOS16.value  # the iOS 16 floor of the variant
    ct.models.MLModel(str(package), skip_model_load=True)
    conversion = entry["conversion"]
    assert conversion["minimum_deployment_target"] == "iOS16"
    assert conversion["compute_units"] == "ALL" and conversion["compute_precision"] == "fp16"
    assert entry["precision"] == "fp16" and entry["os"] == ["iOS 16+", "iPadOS 16+"]
    assert entry["parity"]["passed"]
    assert "reference interpreter" in entry["parity"]["measured_with"]
    assert "conversion_date" not in str(spec.description.metadata)


def _first_weight_blob(package: Path) -> tuple[int, int]:
    """(data offset, byte size) of the largest weight blob, read from the blob's metadata record."""
    from toolchain.backends.coreml.interpreter import Program, weights_path

    program = Program(package)
    offsets = [op.attributes["val"].blobFileValue.offset for op in program.block.operations
               if op.type == "const" and op.attributes["val"].WhichOneof("value") == "blobFileValue"]
    raw = weights_path(package).read_bytes()
    records = [struct.unpack_from("<IIQQ", raw, offset) for offset in offsets]
    _, _, size, data = max(records, key=lambda r: r[2])
    return data, size


def test_check_fails_with_exit_6_after_a_weight_changes_inside_the_mlpackage(coreml_bundle, tmp_path):
    import shutil

    bundle, manifest = coreml_bundle
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    package = copy / _entry(manifest)["path"]
    assert run_stackc("check", copy).exit_code == 0
    data, size = _first_weight_blob(package)
    weights = bytearray((package / "Data/com.apple.CoreML/weights/weight.bin").read_bytes())
    weights[data:data + size // 2] = np.full(size // 4, 0.5, np.float16).tobytes()  # half of one conv's weights
    (package / "Data/com.apple.CoreML/weights/weight.bin").write_bytes(bytes(weights))
    assert_user_error(run_stackc("check", copy), 7, "checksum mismatch")  # verified before anything loads
    reseal(copy, refresh_artifact_digests(copy, manifest_of(copy)))  # as someone rebuilding the checksums would
    line = assert_user_error(run_stackc("check", copy), 6, "no longer match")
    assert VARIANT in run_stackc("check", copy).stderr, line


def test_identical_inputs_give_byte_identical_mlpackages(tmp_path):
    model = fixture_model("detector_tiny")
    packages = [run_pass("convert.coreml", model, tmp_path / f"w{i}", isolate=False)[0].path for i in range(2)]
    files = [{p.relative_to(pkg).as_posix(): p.read_bytes() for p in pkg.rglob("*") if p.is_file()} for pkg in packages]
    assert files[0] == files[1]


def _tiny(path: Path, nodes, inputs, outputs, initializers=(), opset=17) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "tiny", inputs, outputs, list(initializers))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8), str(path))
    return path


def test_unsupported_onnx_op_fails_the_conversion_with_exit_5_naming_it(tmp_path):
    from onnx import TensorProto, helper

    model = _tiny(tmp_path / "topk.onnx", [helper.make_node("Det", ["x"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    with pytest.raises(PassError) as caught:
        run_pass("convert.coreml", model, tmp_path / "work", isolate=False)
    assert caught.value.exit_code == 5 and "Det" in caught.value.one_line()


def test_interpreter_refuses_an_op_it_does_not_implement_with_a_parity_error_naming_it(tmp_path):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from toolchain.backends import coreml

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.reverse(x=x, axes=[1], name="y")  # a MIL op the interpreter does not implement

    path = tmp_path / "reverse.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16, skip_model_load=True).save(str(path))
    artifact = ModelArtifact(path, "coreml", facts={"convert.coreml": {"inputs": {"x": "x"}, "outputs": {"y": "y"}}})
    with pytest.raises(ParityError) as caught:
        coreml.run(artifact, {"x": np.ones((2, 3), np.float32)})
    assert caught.value.exit_code == 6 and "reverse" in caught.value.one_line()


def _conv_model(path: Path, out_channels=4, in_channels=3, size=8) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(1).standard_normal((out_channels, in_channels, 3, 3)).astype(np.float32) * 0.2
    return _tiny(path, [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_channels, size, size])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_channels, size, size])],
                 [numpy_helper.from_array(weight, "w")])


def test_image_input_takes_scale_and_bias_from_the_options_and_keeps_parity(tmp_path):
    import coremltools as ct

    from toolchain.backends import coreml

    model = _conv_model(tmp_path / "conv.onnx")
    options = {"image_inputs": ["x"], "image_scale": 1 / 255, "image_bias": [-0.5, -0.4, -0.3]}
    artifact, _ = run_pass("convert.coreml", model, tmp_path / "work", options, isolate=False)
    spec = ct.utils.load_spec(str(artifact.path))
    assert spec.description.input[0].type.WhichOneof("Type") == "imageType"
    assert artifact.facts["convert.coreml"]["image_inputs"]["x"]["bias"] == [-0.5, -0.4, -0.3]
    pixels = np.random.default_rng(0).integers(0, 256, (1, 3, 8, 8)).astype(np.float32)
    feeds = {"x": pixels / 255 + np.array([-0.5, -0.4, -0.3], np.float32).reshape(1, 3, 1, 1)}
    np.testing.assert_allclose(coreml.run(artifact, feeds)["y"], run_in_onnxruntime(model, feeds)["y"], atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("compression, mil_op", [("linear8", "constexpr_affine_dequantize"),
                                                 ("palettize", "constexpr_lut_to_dense")])
def test_weight_compression_emits_compressed_weights_the_interpreter_decodes(tmp_path, compression, mil_op):
    from toolchain.backends import coreml

    model = _conv_model(tmp_path / "conv.onnx", out_channels=64, in_channels=32)
    options = {"weight_compression": compression, "compression_min_weight_size": 1024}
    artifact, _ = run_pass("convert.coreml", model, tmp_path / "work", options, isolate=False)
    assert mil_op in artifact.facts["convert.coreml"]["mil_ops"]
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 32, 8, 8)).astype(np.float32)}
    got, ref = coreml.run(artifact, feeds)["y"].ravel(), run_in_onnxruntime(model, feeds)["y"].ravel()
    cosine = float(np.dot(got, ref) / (np.linalg.norm(got) * np.linalg.norm(ref)))
    assert 0.99 < cosine < 0.999999  # close, and visibly not the uncompressed weights


def test_unknown_option_values_fail_before_conversion_with_exit_3():
    from toolchain.plugins import get_pass

    with pytest.raises(InputError) as caught:
        get_pass("convert.coreml")({"compute_units": "GPU_ONLY"}, "recipe x: convert.coreml")
    assert caught.value.exit_code == 3 and "compute_units" in caught.value.one_line()


def test_stackc_ops_lists_the_frontend_and_interpreter_ops():
    listing = run_stackc("ops", "coreml", "--json").json()
    assert {"Conv", "LSTM", "GRU", "Resize"} <= set(listing["onnx (frontend)"])
    assert {"conv", "linear", "cast", "constexpr_lut_to_dense"} <= set(listing["mil (reference interpreter)"])
