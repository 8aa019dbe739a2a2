"""Every registered pass, backend and target world has a test of its own (STYLE.md: tests mirror toolchain/).

Passes map to ``tests/passes/test_<id, dots as underscores>.py``; ``convert.<format>`` passes and
every registered backend to ``tests/backends/test_<backend module>.py``; every world to a
case in tests/test_build.py's WORLD_BUILDS (a real build of the whole world). A new pass, backend or world fails here
until its test exists. The formats are the backend registry's keys: the manifest schema's format enum
and every target's variants agree with it.
"""
from __future__ import annotations

import importlib.util
import json
import sys

from conftest import REPO
from toolchain.plugins import backend, formats, registered_passes
from toolchain.targets import available_targets, load_target

TESTS = REPO / "tests"


def backend_module(fmt: str) -> str:
    return backend(fmt).convert.__module__.split(".")[2]  # toolchain.backends.<module>[.<file>]


def expected_test_file(pass_id: str) -> str:
    if pass_id.startswith("convert."):
        fmt = pass_id.split(".", 1)[1]
        return f"tests/backends/test_{backend_module(fmt)}.py"
    return f"tests/passes/test_{pass_id.replace('.', '_')}.py"


def test_every_registered_pass_has_its_own_test_file():
    missing = sorted({expected_test_file(pid) for pid in registered_passes() if not (REPO / expected_test_file(pid)).is_file()})
    assert missing == [], f"registered passes without tests: {missing}"


def test_every_pass_outside_backends_lives_in_a_module_named_after_its_id():
    misnamed = {pid: cls.__module__ for pid, cls in registered_passes().items()
                if not pid.startswith("convert.") and cls.__module__ != f"toolchain.passes.{pid.replace('.', '_')}"}
    assert misnamed == {}


def test_every_backend_has_its_own_test_file():
    missing = sorted(f"tests/backends/test_{backend_module(fmt)}.py" for fmt in formats()
                     if not (TESTS / "backends" / f"test_{backend_module(fmt)}.py").is_file())
    assert missing == [], f"backends without tests: {missing}"


def test_every_backend_registers_its_convert_pass():
    assert {f"convert.{fmt}" for fmt in formats()} <= set(registered_passes())
    assert all(backend(fmt).convert.id == f"convert.{fmt}" for fmt in formats())


def test_the_manifest_schema_and_the_targets_name_exactly_the_registered_formats():
    schema = json.loads((REPO / "toolchain" / "schema" / "manifest.schema.json").read_text())
    enum = schema["properties"]["artifacts"]["items"]["properties"]["format"]["enum"]
    assert sorted(enum) == formats()
    named = {v.format for world in available_targets() for v in load_target(world).variants}
    assert named <= set(formats())


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
