"""Every registered pass, backend and target world has a test of its own (STYLE.md: tests mirror toolchain/).

Passes map to ``tests/passes/test_<id, dots as underscores>.py``; ``convert.<format>`` passes and
every backend in FORMAT_MODULES to ``tests/backends/test_<backend module>.py``; every world to a
case in tests/test_build.py's WORLD_BUILDS (a real build of the whole world). A new pass, backend or world fails here
until its test exists.
"""
from __future__ import annotations

import importlib.util
import sys

from conftest import REPO
from toolchain.backends import FORMAT_MODULES
from toolchain.passes import registered
from toolchain.targets import available_targets

TESTS = REPO / "tests"


def expected_test_file(pass_id: str) -> str:
    if pass_id.startswith("convert."):
        fmt = pass_id.split(".", 1)[1]
        return f"tests/backends/test_{FORMAT_MODULES.get(fmt, fmt)}.py"
    return f"tests/passes/test_{pass_id.replace('.', '_')}.py"


def test_every_registered_pass_has_its_own_test_file():
    missing = sorted({expected_test_file(pid) for pid in registered() if not (REPO / expected_test_file(pid)).is_file()})
    assert missing == [], f"registered passes without tests: {missing}"


def test_every_pass_outside_backends_lives_in_a_module_named_after_its_id():
    misnamed = {pid: cls.__module__ for pid, cls in registered().items()
                if not pid.startswith("convert.") and cls.__module__ != f"toolchain.passes.{pid.replace('.', '_')}"}
    assert misnamed == {}


def test_every_backend_has_its_own_test_file():
    missing = sorted(f"tests/backends/test_{module}.py" for module in FORMAT_MODULES.values()
                     if not (TESTS / "backends" / f"test_{module}.py").is_file())
    assert missing == [], f"backends without tests: {missing}"


def test_every_backend_registers_its_convert_pass():
    assert {f"convert.{fmt}" for fmt in FORMAT_MODULES} <= set(registered())


def test_every_target_world_has_a_build_test():
    spec = importlib.util.spec_from_file_location("_build_tests_for_coverage", TESTS / "test_build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    missing = sorted(set(available_targets()) - set(module.WORLD_BUILDS))
    assert missing == [], f"target worlds never built by tests/test_build.py: {missing}"
