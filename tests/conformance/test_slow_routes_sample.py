"""The slow routes (TFLite, OpenVINO, ORT format) on the fixed CI sample of node tests.

The sample (toolchain/conformance/table.py ``SAMPLE``) is one or two plain cases of each op family
real models are built from; ``make bench`` (benchmarks/conformance.py) runs every node test. The
verdicts are the Core ML suite's: refusals skip with the route's reason, reviewed crashes xfail,
wrong results and unreviewed crashes fail.
"""
from __future__ import annotations

import importlib.util

import pytest

from toolchain.conformance.table import SAMPLE

from .conftest import check_route

NEEDS = {"tflite": ("onnx2tf", "ai_edge_litert"), "openvino": ("openvino",), "ort": ("onnxruntime",)}


@pytest.mark.parametrize("case_name", SAMPLE)
@pytest.mark.parametrize("route", sorted(NEEDS))
def test_slow_route_sample(route, case_name):
    missing = [m for m in NEEDS[route] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the {route} route needs {', '.join(missing)}, which is not installed")
    check_route(route, case_name)
