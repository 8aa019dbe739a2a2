"""Every ONNX backend node test through the Core ML route (frontend -> MIL, fp32, stackc's MIL interpreter).

A pass matches the suite's expected outputs; a refusal is a skip with the route's reason; a crash
passes only as an xfail listed with its reason in toolchain/conformance/expected/coreml.toml; a
wrong result always fails.
"""
from __future__ import annotations

import pytest

from .conftest import check_route, node_cases

pytest.importorskip("coremltools", reason="the Core ML route needs coremltools (pip install 'stackc[coreml]')")


def pytest_generate_tests(metafunc):
    if "coreml_case" in metafunc.fixturenames:
        metafunc.parametrize("coreml_case", sorted(node_cases()))


def test_coreml_route(coreml_case):
    check_route("coreml", coreml_case)
