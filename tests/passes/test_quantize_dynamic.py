"""quantize.dynamic: int8 weights for transformers; a model it cannot shrink is refused, saying why."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import fixture_model, run_in_onnxruntime
from toolchain.artifact import ModelArtifact
from toolchain.errors import PassError
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass


def test_transformer_weights_become_int8_smaller_and_close_to_fp32(tmp_path):
    source = fixture_model("transformer_tiny")
    artifact = get_pass("quantize.dynamic")().run(ModelArtifact(source, "onnx"), PassContext(work_dir=tmp_path))
    facts = artifact.facts["quantize.dynamic"]
    assert facts["int8_weights"] > 0 and facts["size_ratio"] < 0.7
    assert artifact.path.stat().st_size < source.stat().st_size
    rng = np.random.default_rng(0)
    feeds = {"input_ids": rng.integers(0, 128, (2, 16)).astype(np.int64), "attention_mask": np.ones((2, 16), np.int64)}
    reference, quantized = run_in_onnxruntime(source, feeds), run_in_onnxruntime(artifact.path, feeds)
    for name, ref in reference.items():
        cosine = float(np.dot(ref.ravel(), quantized[name].ravel()) / np.linalg.norm(ref) / np.linalg.norm(quantized[name]))
        assert cosine >= 0.99, name


def test_a_model_with_nothing_to_quantize_is_refused_saying_nothing_was_quantized(tmp_path):
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "conv_only",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 6, 6])], [weight])
    path = tmp_path / "conv_only.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(PassError, match="nothing was quantized"):
        get_pass("quantize.dynamic")().run(ModelArtifact(path, "onnx"), PassContext(work_dir=tmp_path / "work"))
