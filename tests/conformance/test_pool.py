"""The worker pool of the slow routes: every case's outcome is cached as it lands, a rerun measures only
what is missing, and forgetting a case measures it again (ORT-format route, hand-made node cases)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from toolchain.conformance.cases import NodeCase
from toolchain.conformance.pool import forget, planned, read_cache, run_pool

pytest.importorskip("onnxruntime", reason="the ORT-format route needs onnxruntime")


def _case(op: str) -> NodeCase:
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], f"test_{op.lower()}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    y = {"Relu": np.maximum(x, 0), "Neg": -x, "Abs": np.abs(x)}[op]
    return NodeCase(f"test_{op.lower()}", model, [([x], [y])], 1e-3, 1e-7)


def test_outcomes_are_cached_and_a_rerun_measures_only_what_is_missing(tmp_path):
    cases = [_case(op) for op in ("Relu", "Neg", "Abs")]
    first = run_pool("ort", cases, tmp_path, jobs=2)
    assert {name: o.status for name, o in first.items()} == {c.name: "pass" for c in cases}
    assert planned(tmp_path) == 3
    parts = sorted(tmp_path.glob("*.jsonl"))
    again = run_pool("ort", cases, tmp_path, jobs=2)
    assert sorted(tmp_path.glob("*.jsonl")) == parts and again == first  # nothing ran
    forget(tmp_path, {"test_neg"})
    assert set(read_cache(tmp_path)) == {"test_relu", "test_abs"}
    third = run_pool("ort", cases, tmp_path, jobs=2)
    assert third["test_neg"].status == "pass" and len(list(tmp_path.glob("*.jsonl"))) == len(parts) + 1
