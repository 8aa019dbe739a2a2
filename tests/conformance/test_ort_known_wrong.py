"""The ORT-format route refuses op configurations onnxruntime computes against the spec (found by the node tests)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from toolchain.artifact import ModelArtifact
from toolchain.errors import PassError
from toolchain.onnxlib.model import save_onnx
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass


def _resize(tmp_path, scales: list[float]):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear",
                            coordinate_transformation_mode="align_corners")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array(scales, np.float32), "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    return ModelArtifact(save_onnx(model, tmp_path / "resize.onnx"), "onnx")


def test_align_corners_with_fractional_output_length_is_refused(tmp_path):
    ctx = PassContext(work_dir=tmp_path / "work", isolate=False)
    with pytest.raises(PassError, match=r"Resize.*align_corners.*floored output length"):
        get_pass("convert.ort")().run(_resize(tmp_path, [1, 1, 0.6, 0.6]), ctx)


def test_align_corners_with_whole_output_lengths_converts(tmp_path):
    ctx = PassContext(work_dir=tmp_path / "work", isolate=False)
    artifact = get_pass("convert.ort")().run(_resize(tmp_path, [1, 1, 0.5, 0.5]), ctx)
    assert artifact.path.suffix == ".ort" and artifact.path.stat().st_size > 0
