"""The reviewed expected-failure lists: crashes only, each with a reason; a wrong result can never be listed."""
from __future__ import annotations

import pytest

from toolchain.conformance import Outcome, expected, verdict
from toolchain.conformance.routes import ROUTES


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_committed_lists_load(route):
    for case, reason in expected.load_expected(route).items():
        assert case.startswith("test_") and len(reason) > 20, (case, reason)


def test_a_wrong_result_cannot_be_listed(tmp_path, monkeypatch):
    monkeypatch.setattr(expected, "EXPECTED_DIR", tmp_path)
    (tmp_path / "coreml.toml").write_text('[wrong]\ntest_div_int32_trunc = "floor instead of trunc"\n')
    with pytest.raises(ValueError, match="only crash may be expected"):
        expected.load_expected("coreml")


def test_verdicts():
    listed = {"test_x": "a known crash"}
    assert verdict(Outcome("test_x", "coreml", "crash", "KeyError"), listed)[0] == "xfail"
    assert verdict(Outcome("test_y", "coreml", "crash", "KeyError"), listed)[0] == "fail"
    assert verdict(Outcome("test_x", "coreml", "wrong", "differs"), listed)[0] == "fail"
    assert verdict(Outcome("test_y", "coreml", "refused", "no converter for Foo"), listed) == ("skip", "no converter for Foo")
