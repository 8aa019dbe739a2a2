"""The floors of ARCHITECTURE.md, enforced: every import inside toolchain/ (at the top of a module or
inside a function) goes to its own floor or one below, and the modules import each other in no circle."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

TOOLCHAIN = REPO / "toolchain"

# Lowest first; a module belongs to the floor of the longest prefix that names it.
FLOORS = [
    ("base", ["toolchain", "toolchain.errors", "toolchain.artifact", "toolchain._toml", "toolchain.progress",
              "toolchain.process_tree", "toolchain.workdirs", "toolchain.package_versions", "toolchain.compat",
              "toolchain.compat_mcu", "toolchain.cli_boundary"]),
    ("onnxlib", ["toolchain.onnxlib"]),
    ("parity", ["toolchain.parity"]),
    ("bundle", ["toolchain.bundle"]),
    ("engine", ["toolchain.engine"]),
    ("precision", ["toolchain.precision"]),
    ("plug-ins", ["toolchain.passes", "toolchain.backends", "toolchain.exporters"]),
    ("plan", ["toolchain.plugins", "toolchain.targets", "toolchain.recipes"]),
    ("app", ["toolchain.app"]),
    ("front", ["toolchain.api", "toolchain.commands", "toolchain.report", "toolchain.registry",
               "toolchain.conformance"]),
    ("batch", ["toolchain.batch"]),
    ("cli", ["toolchain.cli"]),
]


def floor_of(module: str) -> int:
    best, floor = -1, None
    for index, (_, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, floor = len(prefix), index
    assert floor is not None, f"{module} is on no floor of ARCHITECTURE.md"
    return floor


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every toolchain module ``path`` imports (a ``from X import name`` may name a submodule: both count)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("toolchain") and _exists(m)}


def _exists(module: str) -> bool:
    path = REPO / module.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) - {module_name(p)} for p in TOOLCHAIN.rglob("*.py")}


def test_every_import_goes_to_its_own_floor_or_below():
    upward = sorted(f"{m} ({FLOORS[floor_of(m)][0]}) imports {t} ({FLOORS[floor_of(t)][0]})"
                    for m, targets in _graph().items() for t in targets if floor_of(t) > floor_of(m))
    assert upward == []


def test_the_engine_imports_no_plug_in_target_or_recipe():
    plug_ins = ("toolchain.passes", "toolchain.backends", "toolchain.exporters", "toolchain.precision",
                "toolchain.targets", "toolchain.recipes", "toolchain.plugins")
    reached = sorted(f"{m} -> {t}" for m, targets in _graph().items() if m.startswith("toolchain.engine")
                     for t in targets if t.startswith(plug_ins))
    assert reached == []


def test_no_modules_import_each_other_in_a_circle():
    graph = _graph()
    # a package's face hands its members on: importing a package is not importing what its __init__ imports
    state: dict[str, int] = {}
    circles = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target in graph and _is_face(target) and module.startswith(target + "."):
                continue  # a module importing its own package's face
            if state.get(target) == 1:
                circles.append(" -> ".join(trail[trail.index(target):] + [target]) if target in trail else target)
            elif state.get(target) is None and target in graph:
                visit(target, trail + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def _is_face(module: str) -> bool:
    return (REPO / module.replace(".", "/") / "__init__.py").is_file()
