"""Target worlds: ``targets/*.toml`` loaded into frozen dataclasses.

A world is the seed's nine-layer stack plus the artifact variants it wants. Each variant names
its format, precision, runtime floor, accelerator APIs, OS floors and parity policy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ._toml import Table, read_toml
from .compat import Platform, parse_platforms
from .engine.context import VariantSpec
from .errors import InputError
from .plugins import formats
from .parity.policy import PRECISIONS, ParityPolicy, parse_policy, policy_for
from .onnxlib.shapes import ShapeDefaults

LAYERS = (
    "application",
    "frameworks",
    "runtimes_compilers",
    "orchestration",
    "accelerator_api",
    "os",
    "kernel_drivers",
    "firmware",
    "hardware",
)


@dataclass(frozen=True)
class Runtime:
    name: str
    min_version: str


@dataclass(frozen=True)
class Variant:
    name: str
    format: str
    precision: str
    runtime: Runtime
    accelerator_apis: tuple[str, ...]
    os: tuple[str, ...]
    parity: ParityPolicy
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    platforms: tuple[Platform, ...] = ()  # machine-readable OS floors (compat.py); required in target files

    def spec(self) -> VariantSpec:
        """What its conversion pass needs to know of it."""
        return VariantSpec(self.name, self.format, self.precision, self.parity)


@dataclass(frozen=True)
class Target:
    name: str
    title: str
    description: str
    layers: dict[str, str] = field(hash=False)
    shapes: ShapeDefaults
    variants: tuple[Variant, ...]
    default_recipe: str = "default"
    origin: str = ""  # the file it was read from, so a worker process can load the same world


def _data_dir() -> Path:
    return Path(str(resources.files("toolchain") / "_data" / "targets"))


def target_dir() -> Path:
    """The folder the shipped targets are read from (the repo's ``targets/`` or the wheel's copy)."""
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file() and (repo / "targets").is_dir():
        return repo / "targets"
    return _data_dir()


def available_targets() -> list[str]:
    return sorted(p.stem for p in target_dir().glob("*.toml"))


def load_target(name_or_path: str) -> Target:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = target_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(available_targets())
            raise InputError(f"unknown target '{name_or_path}' (known targets: {known})")
    return parse_target(read_toml(path), str(path.name), origin=str(path.resolve()))


def _parse_variant(data: Any, where: str) -> Variant:
    table = Table(data, where)
    fmt = table.get("format", str)
    if fmt not in formats():
        raise InputError(f"{where}: format '{fmt}' is not one of {', '.join(formats())}")
    precision = table.get("precision", str)
    if precision not in PRECISIONS:
        raise InputError(f"{where}: precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    runtime_table = table.table("runtime")
    runtime = Runtime(runtime_table.get("name", str), runtime_table.get("min_version", str))
    runtime_table.done()
    variant = Variant(
        name=table.get("name", str),
        format=fmt,
        precision=precision,
        runtime=runtime,
        accelerator_apis=table.strings("accelerator_apis"),
        os=table.strings("os"),
        parity=parse_policy(table.table("parity"), policy_for(precision)),
        options=dict(table.get("options", dict, {})),
        platforms=parse_platforms(table.get("platforms", list), where),
    )
    table.done()
    return variant


def parse_target(data: dict[str, Any], where: str, origin: str = "") -> Target:
    table = Table(data, where)
    layers_table = table.table("layers")
    layers = {layer: layers_table.get(layer, str) for layer in LAYERS}
    layers_table.done()
    shapes_table = table.table("shapes")
    dims = shapes_table.get("dims", dict, {})
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in dims.values()):
        raise InputError(f"{where}: shapes.dims values must be positive integers")
    shapes = ShapeDefaults(
        static=shapes_table.get("static", bool),
        default_dim=shapes_table.get("default_dim", int, 1),
        dims=dict(dims),
    )
    shapes_table.done()
    raw_variants = table.get("variants", list)
    variants = tuple(_parse_variant(v, f"{where}: variants[{i}]") for i, v in enumerate(raw_variants))
    names = [v.name for v in variants]
    if len(set(names)) != len(names) or not variants:
        raise InputError(f"{where}: variants must be a non-empty list with unique names")
    target = Target(
        name=table.get("name", str),
        title=table.get("title", str),
        description=table.get("description", str),
        layers=layers,
        shapes=shapes,
        variants=variants,
        default_recipe=table.get("default_recipe", str, "default"),
        origin=origin,
    )
    table.done()
    return target
