"""What an app developer feeds each artifact and reads back, read from the artifact itself at build time.

The readers are the backends' (``Backend.describe_io``, ``backends/io_readers.py``); a build has them
run in the converter's child, where the runtime is loaded (``Execution.io``), and reads here only
what no child read. Files that must ship next to the main one (OpenVINO's ``.bin``) are listed.
``stackc inspect`` prints it as a table from the manifest alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plugins import backend


def describe(fmt: str, path: Path, facts: dict[str, Any], files: list[str],
             read: dict[str, list] | None = None) -> dict[str, Any] | None:
    """{"inputs": [...], "outputs": [...], "ships_with": [...]} of one artifact; None for a format without a
    reader. ``read``: {"inputs", "outputs"} the converter's child already read from the same artifact."""
    reader = backend(fmt).describe_io
    if read is None and reader is None:
        return None
    inputs, outputs = (read["inputs"], read["outputs"]) if read is not None else reader(Path(path), facts)
    main = Path(path).name
    ships_with = sorted({Path(f).name for f in files} - {main}) if fmt == "openvino" else []
    return {"inputs": inputs, "outputs": outputs, "ships_with": ships_with}
