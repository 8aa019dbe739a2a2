"""Recipes: ``recipes/*.toml``, an ordered list of steps validated in full before anything runs.

``steps`` prepare the one ONNX model every backend converts; ``convert.<format>`` tables give
options to the conversion pass of each variant of that format. Every step id must be registered
and every option known, or loading fails with the known names.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._toml import Table, read_toml
from .errors import InputError
from .plugins import backend, get_pass
from .parity.policy import PRECISIONS, parse_policy, policy_for
from .targets import Target, Variant, target_dir


@dataclass(frozen=True)
class Step:
    id: str
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    def make_pass(self, where: str):
        try:
            cls = get_pass(self.id)
        except InputError as e:  # name the recipe file and step the unknown id is in
            raise InputError(f"{where}: {e.message}") from None
        return cls(self.options, where)


@dataclass(frozen=True)
class VariantChange:
    """A recipe's change to a world's variants: a copy of variant ``base`` named ``name`` with other
    precision, parity policy or options; ``replace`` drops the base variant from the build."""

    base: str
    name: str
    precision: str | None = None
    parity: dict[str, Any] | None = field(default=None, hash=False)
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    replace: bool = False


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    steps: tuple[Step, ...]
    convert: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)
    variants: tuple[VariantChange, ...] = ()

    def variants_for(self, target: Target) -> tuple[Variant, ...]:
        """The world's variants with this recipe's additions and replacements applied, in order."""
        by_name = {v.name: v for v in target.variants}
        result = list(target.variants)
        for change in self.variants:
            if change.base not in by_name:
                known = ", ".join(by_name)
                raise InputError(f"recipe {self.name}: variant '{change.name}' is based on '{change.base}', "
                                 f"which target {target.name} does not have (its variants: {known})")
            base = by_name[change.base]
            precision = change.precision or base.precision
            policy = base.parity if precision == base.precision else policy_for(precision)
            if change.parity is not None:
                policy = parse_policy(Table(change.parity, f"recipe {self.name}: variants.{change.name}.parity"), policy)
            variant = replace(base, name=change.name, precision=precision, parity=policy,
                              options={**base.options, **change.options})
            if change.replace:
                result = [variant if v.name == base.name else v for v in result]
            else:
                result.append(variant)
        names = [v.name for v in result]
        if len(names) != len(set(names)):
            raise InputError(f"recipe {self.name}: variant names collide in target {target.name}: {names}")
        return tuple(result)

    def formats_for(self, target: Target) -> tuple[str, ...]:
        """The formats of the world's variants, in order: what the canonical model feeds in a full build
        (a ``--variants`` build prepares as the full one, so CI parts merge; passes/optimize.py)."""
        return tuple(dict.fromkeys(v.format for v in self.variants_for(target)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "steps": [{"id": s.id, "options": s.options} for s in self.steps],
            "convert": self.convert,
            "variants": [{k: v for k, v in change.__dict__.items() if v not in (None, {}, False)}
                         for change in self.variants],
        }


def recipe_dir() -> Path:
    return target_dir().parent / "recipes"


def available_recipes() -> list[str]:
    return sorted(p.stem for p in recipe_dir().glob("*.toml"))


def load_recipe(name_or_path: str) -> Recipe:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = recipe_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(available_recipes())
            raise InputError(f"unknown recipe '{name_or_path}' (known recipes: {known})")
    recipe = parse_recipe(read_toml(path), path.name)
    validate(recipe, path.name)
    return recipe


def parse_recipe(data: dict[str, Any], where: str) -> Recipe:
    table = Table(data, where)
    extends = table.get("extends", str, None)  # another recipe whose steps, convert tables and variants come first
    if extends and extends == Path(where).stem:
        raise InputError(f"{where}: a recipe cannot extend itself")
    base = load_recipe(extends) if extends else None
    steps = list(base.steps) if base else []
    own_steps = table.get("steps", list, []) if base else table.get("steps", list)
    for i, raw in enumerate(own_steps):
        step = Table(raw, f"{where}: steps[{i}]")
        steps.append(Step(step.get("id", str), dict(step.get("options", dict, {}))))
        step.done()
    convert = table.get("convert", dict, {})
    for fmt, options in convert.items():
        if not isinstance(options, dict):
            raise InputError(f"{where}: convert.{fmt} must be a table of options")
    variants = []
    for i, raw in enumerate(table.get("variants", list, [])):
        entry = Table(raw, f"{where}: variants[{i}]")
        change = VariantChange(
            base=entry.get("from", str), name=entry.get("name", str),
            precision=entry.get("precision", str, None), parity=entry.get("parity", dict, None),
            options=dict(entry.get("options", dict, {})), replace=entry.get("replace", bool, False),
        )
        entry.done()
        if change.precision is not None and change.precision not in PRECISIONS:
            raise InputError(f"{where}: variants[{i}]: precision '{change.precision}' is not one of {', '.join(PRECISIONS)}")
        if change.parity is not None:
            parse_policy(Table(change.parity, f"{where}: variants[{i}].parity"))
        variants.append(change)
    if base:
        convert = {**base.convert, **{fmt: {**base.convert.get(fmt, {}), **opts} for fmt, opts in convert.items()}}
        variants = [*base.variants, *variants]
    description = table.get("description", str, "")  # optional: a missing one must not hide the real errors
    recipe = Recipe(table.get("name", str, Path(where).stem), description, tuple(steps), dict(convert), tuple(variants))
    table.done()
    return recipe


def validate(recipe: Recipe, where: str) -> None:
    """Construct every pass once so an unknown id or option fails before the first step runs."""
    for i, step in enumerate(recipe.steps):
        if step.id.startswith("convert."):
            raise InputError(f"{where}: steps[{i}] '{step.id}': conversions come from the target's variants; "
                             f"put their options in a [convert.<format>] table")
        step.make_pass(f"{where}: steps[{i}] '{step.id}'")
    for fmt, options in recipe.convert.items():
        backend(fmt).convert(options, f"{where}: convert.{fmt}")
