"""A non-editable install works: the wheel carries the worlds, recipes and manifest schema, and finds them."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the sources (so no build/ or egg-info lands in the repo), offline."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("stackc", "toolchain", "targets", "recipes"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    process = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out),
         str(source)], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]
    (built,) = out.glob("stackc-*.whl")
    return built


def test_the_wheel_contains_every_world_recipe_and_the_manifest_schema(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for world in (REPO / "targets").glob("*.toml"):
        assert f"toolchain/_data/targets/{world.name}" in names
    for recipe in (REPO / "recipes").glob("*.toml"):
        assert f"toolchain/_data/recipes/{recipe.name}" in names
    assert "toolchain/schema/manifest.schema.json" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    assert "stackc = toolchain.cli:main" in next(
        zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("entry_points.txt"))


def test_every_toolchain_package_and_module_is_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "toolchain").rglob("*.py") if "__pycache__" not in p.parts)
    missing = [m for m in modules if m not in names]
    assert missing == [], f"not in the wheel (add the package to pyproject.toml [tool.setuptools] packages): {missing}"


def test_an_installed_copy_finds_its_worlds_recipes_and_schema_without_the_repo(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import toolchain.targets as t, toolchain.recipes as r, toolchain.bundle.verify as v;"
        "assert t.target_dir().parts[-2:] == ('_data', 'targets'), t.target_dir();"
        "print(','.join(t.available_targets()));"
        "[r.load_recipe(n) for n in r.available_recipes()];"
        "[t.load_target(n) for n in t.available_targets()];"
        "assert v.manifest_schema()['title']"
    )
    process = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                             env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert process.returncode == 0, process.stderr[-2000:]
    assert process.stdout.strip().split(",") == sorted(p.stem for p in (REPO / "targets").glob("*.toml"))
