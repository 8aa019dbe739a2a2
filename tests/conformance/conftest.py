"""The ONNX backend node tests, loaded once per session (onnx 1.23 generates them in memory: ~1 min here)."""
from __future__ import annotations

import pytest

from toolchain.conformance import run_case, verdict
from toolchain.conformance.expected import load_expected

_CASES: dict = {}


def node_cases() -> dict:
    if not _CASES:
        from toolchain.conformance.cases import load_cases

        _CASES.update((c.name, c) for c in load_cases())
    return _CASES


def check_route(route: str, case_name: str) -> None:
    """Run one case through one route and turn the outcome into pass / skip / xfail / fail."""
    outcome = run_case(route, node_cases()[case_name])
    kind, message = verdict(outcome, load_expected(route))
    if kind == "skip":
        pytest.skip(f"{route} refuses: {message}")
    if kind == "xfail":
        pytest.xfail(message)
    if kind == "fail":
        pytest.fail(message, pytrace=False)
