"""The content-addressed build cache: a task's key is the digest of everything that decides its bundle.

Key = sha256 of: the source's bytes (a SavedModel folder: every file), the task's options and the
bytes of its ``--inputs`` / ``--calibration`` data, the recipe's and the world's TOML bytes, stackc's
version and source code, and the installed converter and runtime versions. An entry is a folder
``<cache>/<key>/`` that appears by one rename once its build finished and its bundle checked out;
a killed batch leaves at most a ``stackc-work-batch-*`` folder with an owner marker, which the next
batch removes (``workdirs.sweep_stale``) and never reads.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__
from ..bundle.store import sha256_file
from ..workdirs import sweep_stale, write_marker
from .job import Task, task_dict

PARTIAL_PREFIX = "stackc-work-batch-"
RESULT = "result.json"
CODE_ID_ENV = "STACKC_CACHE_CODE_ID"
# every package whose version can change an artifact's bytes or a parity verdict
CONVERTERS = ("numpy", "onnx", "onnxruntime", "onnxslim", "onnxconverter-common", "openvino", "nncf", "tensorflow",
              "tf_keras", "onnx2tf", "onnx_graphsurgeon", "ai-edge-litert", "coremltools", "torch", "onnxscript",
              "tf2onnx", "cryptography")

_code_digest: list[str] = []


def task_key(task: Task) -> str:
    from ..recipes import recipe_dir
    from ..targets import load_target, target_dir

    world_file = Path(task.world) if task.world.endswith(".toml") else target_dir() / f"{task.world}.toml"
    recipe = task.recipe or load_target(task.world).default_recipe
    recipe_file = Path(recipe) if recipe.endswith(".toml") else recipe_dir() / f"{recipe}.toml"
    options = task_dict(task)
    for key in ("model", "inputs", "calibration", "recipe"):  # paths do not matter, their bytes do
        options.pop(key)
    facts = {
        "source": digest_path(task.model),
        "options": options,
        "inputs": digest_path(task.inputs) if task.inputs else None,
        "calibration": digest_path(task.calibration) if task.calibration else None,
        "recipe": [recipe if not recipe.endswith(".toml") else "file", sha256_file(recipe_file)],
        "recipes": _folder_digest(recipe_dir()),  # a recipe may extend another
        "world": [task.world, sha256_file(world_file)],
        "stackc": [__version__, stackc_code_digest()],
        "converters": converter_versions(),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def converter_versions() -> dict[str, str | None]:
    found = {}
    for name in CONVERTERS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def stackc_code_digest() -> str:
    """stackc's own code and data: a changed pass or backend is a different compiler, whatever its version.

    ``$STACKC_CACHE_CODE_ID`` replaces the digest (a CI that knows its commit, or tests that run while
    the checkout is being edited); an empty value is ignored."""
    if os.environ.get(CODE_ID_ENV):
        return "id:" + os.environ[CODE_ID_ENV]
    if not _code_digest:
        package = Path(__file__).resolve().parent.parent
        _code_digest.append(_folder_digest(package, (".py", ".json", ".toml")))
    return _code_digest[0]


def digest_path(path: Path) -> str:
    return _folder_digest(path) if Path(path).is_dir() else sha256_file(Path(path))


def _folder_digest(folder: Path, suffixes: tuple[str, ...] | None = None) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        if suffixes is None or path.suffix in suffixes:
            digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


class Cache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        sweep_stale(self.root)  # folders of killed batches (owner gone); a running batch's stay

    def entry(self, key: str) -> Path | None:
        """A finished entry, or None: anything without its result file is not one."""
        folder = self.root / key
        return folder if (folder / RESULT).is_file() else None

    def staging(self, key: str) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{key[:16]}-", dir=self.root))
        write_marker(folder)
        return folder

    def publish(self, staging: Path, key: str, result: dict[str, Any]) -> Path:
        (staging / RESULT).write_text(json.dumps(result, indent=2, sort_keys=True))
        final = self.root / key
        if final.exists():  # an entry another batch finished meanwhile: same key, same bundle
            shutil.rmtree(staging, ignore_errors=True)
            return final
        os.rename(staging, final)
        return final
