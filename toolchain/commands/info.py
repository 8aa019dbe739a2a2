"""Commands that describe what stackc knows: targets, recipes, passes, ops."""
from __future__ import annotations

import json

import click


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--json", "as_json", is_flag=True, help="Print the worlds as JSON.")
def targets(names: tuple[str, ...], as_json: bool) -> None:
    """The target worlds (all, or those NAMEd): their nine-layer stacks and the artifacts they produce."""
    from ..targets import LAYERS, available_targets, load_target

    worlds = [load_target(name) for name in (names or available_targets())]
    if as_json:
        click.echo(json.dumps({"ok": True, "targets": [_target_dict(t) for t in worlds]}, indent=2))
        return
    for world in worlds:
        click.echo(f"{world.name}: {world.title}")
        click.echo(f"  {world.description}")
        for index, layer in enumerate(LAYERS, 1):
            click.echo(f"  {index}) {layer:<19} {world.layers[layer]}")
        click.echo("  artifacts:")
        for v in world.variants:
            click.echo(f"    - {v.name}: {v.format} {v.precision}, {v.runtime.name} >= {v.runtime.min_version}; "
                       f"APIs: {', '.join(v.accelerator_apis)}; OS: {', '.join(v.os)}")
        click.echo()


def _target_dict(world) -> dict:
    return {
        "name": world.name, "title": world.title, "description": world.description, "layers": world.layers,
        "variants": [{"name": v.name, "format": v.format, "precision": v.precision,
                      "runtime": {"name": v.runtime.name, "min_version": v.runtime.min_version},
                      "accelerator_apis": list(v.accelerator_apis), "os": list(v.os),
                      "platforms": [p.as_dict() for p in v.platforms], "parity": v.parity.as_dict()}
                     for v in world.variants],
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the recipes as JSON.")
def recipes(as_json: bool) -> None:
    """The shipped recipes and the passes they run."""
    from ..plugins import get_pass
    from ..recipes import available_recipes, load_recipe

    if as_json:
        click.echo(json.dumps({"ok": True, "recipes": [_recipe_dict(load_recipe(n)) for n in available_recipes()]},
                              indent=2))
        return
    for name in available_recipes():
        recipe = load_recipe(name)
        click.echo(f"{recipe.name}: {recipe.description}")
        for step in recipe.steps:
            options = f" {step.options}" if step.options else ""
            click.echo(f"  - {step.id}{options}: {get_pass(step.id).summary}")
        for fmt, options in recipe.convert.items():
            click.echo(f"  - convert.{fmt} {options}")
        for change in recipe.variants:
            verb = "replaces" if change.replace else "adds"
            options = f" {change.options}" if change.options else ""
            click.echo(f"  {verb} variant {change.name}: {change.precision or 'same precision'} from {change.base}{options}")
        click.echo()


def _recipe_dict(recipe) -> dict:
    return {"name": recipe.name, "description": recipe.description,
            "steps": [{"id": step.id, "options": step.options} for step in recipe.steps],
            "convert": recipe.convert,
            "variants": [{"name": c.name, "from": c.base, "precision": c.precision, "replaces": c.replace,
                          "options": c.options} for c in recipe.variants]}


@click.command()
def passes() -> None:
    """Every registered pass id and what it does."""
    from ..plugins import registered_passes

    for pass_id, cls in registered_passes().items():
        click.echo(f"{pass_id:<20} {cls.summary}")


@click.command()
@click.argument("fmt", metavar="FORMAT")
@click.option("--json", "as_json", is_flag=True, help="Print the lists as JSON.")
def ops(fmt: str, as_json: bool) -> None:
    """The ops a backend with its own converter supports (e.g. 'stackc ops coreml')."""
    from ..plugins import backend
    from ..errors import InputError

    supported_ops = backend(fmt).supported_ops
    if supported_ops is None:
        raise InputError(f"format '{fmt}' converts with an external tool and keeps no op list of its own")
    lists = supported_ops()
    if as_json:
        click.echo(json.dumps({"ok": True, **lists}, indent=2))
        return
    for title, names in lists.items():
        click.echo(f"{title}: {len(names)} ops")
        click.echo("  " + ", ".join(names))
