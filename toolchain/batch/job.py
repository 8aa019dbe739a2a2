"""What a batch builds: a TOML job file or a folder of models, expanded into one task per (model, world)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._toml import Table, read_toml
from ..errors import InputError, UsageError

MODEL_SUFFIXES = (".onnx", ".pt2", ".pt", ".jit", ".keras", ".h5")
DEFAULT_MEMORY_MB = 2048  # what a small model's build needs; a task declares more for a larger source


@dataclass(frozen=True)
class Task:
    """One ``stackc build`` of one model for one world, with that model's options."""

    model: Path
    world: str
    version: str = "0.1.0"
    recipe: str | None = None
    shapes: tuple[str, ...] = ()
    binds: tuple[str, ...] = ()
    inputs: Path | None = None
    calibration: Path | None = None
    seed: int = 0
    variants: tuple[str, ...] = ()
    memory_mb: int = 0  # declared memory (Ray packs tasks by it); 0: estimated from the source's size

    @property
    def label(self) -> str:
        return f"{self.model.name} x {self.world}"

    def build_args(self, out: Path) -> list[str]:
        """The ``stackc build`` arguments of this task: every batch build is a plain build."""
        args = ["build", str(self.model), "--target", self.world, "--out", str(out), "--version", self.version,
                "--seed", str(self.seed), "--keep-going", "--json", "--quiet"]
        if self.recipe:
            args += ["--recipe", self.recipe]
        for shape in self.shapes:
            args += ["--shape", shape]
        for bind in self.binds:
            args += ["--bind", bind]
        if self.inputs:
            args += ["--inputs", str(self.inputs)]
        if self.calibration:
            args += ["--calibration", str(self.calibration)]
        if self.variants:
            args += ["--variants", ",".join(self.variants)]
        return args

    def declared_memory(self) -> int:
        """Bytes this task asks the scheduler for: the job's ``memory_mb``, else 2 GiB + 12x the source."""
        if self.memory_mb:
            return self.memory_mb * 2**20
        size = _size(self.model)
        return DEFAULT_MEMORY_MB * 2**20 + 12 * size


@dataclass
class Job:
    tasks: list[Task] = field(default_factory=list)


def load_job(path: Path, targets: tuple[str, ...]) -> Job:
    """A job from a TOML file or a folder of models; ``targets`` (``--targets``) is the default list of worlds."""
    path = Path(path)
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        if not targets:
            raise UsageError(f"{path} is a folder of models: name the worlds with --targets edge-mobile,edge-iot")
        models = sorted(p for p in path.iterdir() if _is_model(p))
        if not models:
            raise InputError(f"{path}: no models in it (looked for {', '.join(MODEL_SUFFIXES)} files and SavedModel folders)")
        job = Job([Task(m.resolve(), world) for m in models for world in targets])
    elif path.suffix == ".toml" and path.is_file():
        job = _from_toml(path, targets)
    else:
        raise UsageError(f"{path}: give a job file (.toml) or a folder of models")
    _refuse_clashes(job)
    return job


def _is_model(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return (path / "saved_model.pb").is_file()
    return path.is_file() and path.suffix.lower() in MODEL_SUFFIXES


def _from_toml(path: Path, cli_targets: tuple[str, ...]) -> Job:
    table = Table(read_toml(path), path.name)
    default_targets = table.strings("targets", ())  # read even when --targets overrides it (known key)
    default_targets = cli_targets or default_targets
    entries = table.get("models", list)
    table.done()
    if not entries:
        raise InputError(f"{path.name}: 'models' is empty")
    base = path.parent
    tasks = []
    for index, entry in enumerate(entries):
        model = Table(entry, f"{path.name}: models[{index}]")
        source = _file(base, model.get("path", str), model.where, "path")
        own_targets = model.strings("targets", ())
        worlds = cli_targets or own_targets or default_targets
        if not worlds:
            raise InputError(f"{model.where}: no targets (set 'targets' in the job or pass --targets)")
        options = dict(
            version=model.get("version", str, "0.1.0"), recipe=model.get("recipe", str, None),
            shapes=model.strings("shape", ()), binds=model.strings("bind", ()),
            inputs=_optional_file(base, model.get("inputs", str, None), model.where, "inputs"),
            calibration=_optional_file(base, model.get("calibration", str, None), model.where, "calibration"),
            seed=model.get("seed", int, 0), variants=model.strings("variants", ()),
            memory_mb=model.get("memory_mb", int, 0),
        )
        recipe = options["recipe"]
        if recipe and recipe.endswith(".toml"):
            options["recipe"] = str(_file(base, recipe, model.where, "recipe"))
        model.done()
        tasks += [Task(source, world, **options) for world in worlds]
    return Job(tasks)


def _file(base: Path, value: str, where: str, key: str) -> Path:
    path = (base / value).resolve()
    if not path.exists():
        raise InputError(f"{where}: {key} '{value}' does not exist")
    return path


def _optional_file(base: Path, value: str | None, where: str, key: str) -> Path | None:
    return None if value is None else _file(base, value, where, key)


def _refuse_clashes(job: Job) -> None:
    """Two tasks that would write the same bundle name (same stem, version and world) cannot share a folder."""
    from ..app.build import bundle_name

    seen: dict[str, Task] = {}
    for task in job.tasks:
        name = bundle_name(task.model, task.version, task.world)
        if name in seen and seen[name] != task:
            raise InputError(f"{seen[name].model} and {task.model} would both write bundle {name}: "
                             "rename one or give them different versions")
        if name in seen:
            raise InputError(f"{task.label} is listed twice")
        seen[name] = task


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def task_dict(task: Task) -> dict[str, Any]:
    return {"model": str(task.model), "world": task.world, "version": task.version, "recipe": task.recipe,
            "shape": list(task.shapes), "bind": list(task.binds), "inputs": str(task.inputs) if task.inputs else None,
            "calibration": str(task.calibration) if task.calibration else None, "seed": task.seed,
            "variants": list(task.variants)}
