"""Where a calibrated int8 conversion runs: in the converter's own process, or a fresh one per mode.

TensorFlow's calibrator has crashed (SIGSEGV in ``_feed_tensors``) on the graphs onnx2tf made of ONNX
LSTM/GRU, before the int8 route unrolled them (``int8_rewrites``); forking the converter instead
deadlocks. Each calibrated mode used to quantize in a fresh ``python -m`` process, a crash losing only
that mode, at the cost of a TensorFlow import (3-4 s) per mode and a second TensorFlow process beside
the converter's (PP-OCRv5 cls, edge-iot: 633 MB next to the converter's 744 MB). Now the converter
quantizes in its own process and marks the mode's folder while it does (``IN_PROCESS_MARKER``). If the
process dies there, the pass converts again with ``int8_in_own_process`` (``ConvertTflite``), every
mode in its own process as before; a recipe can ask for that from the start. Either way the modes start
from the winning route's SavedModel (``export.save_serving``), written once: onnx2tf runs once per
route, never again per int8 mode. The child is a child of the isolated pass, so the pass's time and
memory limits cover it, and it dies with that pass (``process_tree``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ... import process_tree
from ...engine.execution import load_rows, save_rows

IN_PROCESS_MARKER = "calibrating-in-process"  # in a mode's folder while this process calibrates it
STATISTICS = "calibration-statistics.txt"  # a child's export.Calibrations.statistics


def quantize(saved_model: Path, keys: list, batches: Sequence[list[np.ndarray]], mode: str, int8_io: bool,
             own_process: bool, calibrated) -> bytes:
    """``mode``'s int8 flatbuffer from the SavedModel (inputs ``keys``, ``export.TensorKey``): in this
    process, or (``own_process``) in a fresh one. In this process the modes calibrate once: ``calibrated``
    (``export.Calibrations``), one per SavedModel and ``batches``, keeps TensorFlow's calibration
    (``export.calibrating``); either way it records how the statistics were gathered."""
    if own_process:
        return run_mode(saved_model, keys, batches, mode, int8_io, calibrated)
    from .export import saved_to_tflite

    work = saved_model.parent / f"int8-{mode}"
    work.mkdir(parents=True, exist_ok=True)
    marker = work / IN_PROCESS_MARKER
    marker.write_text("if this process dies now, the pass converts again with every mode in its own process\n")
    try:
        return saved_to_tflite(saved_model, keys, "int8", calibration=batches, int8_io=int8_io, int8_mode=mode,
                               calibrated=calibrated)
    finally:
        marker.unlink()


def calibration_markers(root: Path) -> list[Path]:
    """``IN_PROCESS_MARKER`` files under ``root``. Safe while a converter writes there: TensorFlow renames
    folders as it saves (``variables_temp``), and ``os.walk`` passes over one that vanishes where
    ``Path.rglob`` raises."""
    return [Path(folder) / IN_PROCESS_MARKER for folder, _, files in os.walk(root) if IN_PROCESS_MARKER in files]


def died_calibrating(out_dir: Path) -> bool:
    """A converter that wrote ``out_dir`` died while calibrating in its own process."""
    return bool(calibration_markers(out_dir))


def run_mode(saved_model: Path, keys: list, batches: Sequence[list[np.ndarray]], mode: str, int8_io: bool,
             calibrated=None) -> bytes:
    """Quantize in a child process; raises RuntimeError with the child's last words if it fails or crashes.
    ``calibrated`` (``export.Calibrations``), if given, learns how the child gathered its statistics."""
    work = saved_model.parent / f"int8-{mode}"
    work.mkdir(parents=True, exist_ok=True)
    save_rows(work / "calibration.npz", ({str(j): a for j, a in enumerate(batch)} for batch in batches))
    request = {"saved_model": str(saved_model), "inputs": [[k.key, list(k.shape), k.dtype] for k in keys],
               "samples": len(batches), "mode": mode, "int8_io": int8_io, "work": str(work)}
    (work / "request.json").write_text(json.dumps(request))
    with open(work / "worker.log", "wb") as log:
        code = process_tree.call([sys.executable, "-m", __name__, str(work / "request.json")],
                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    result = work / "model.tflite"
    if code != 0 or not result.exists():
        noise = ("I0000", "W0000", "WARNING: All log messages", "loc(")  # TensorFlow start-up chatter
        lines = [l for l in (work / "worker.log").read_text(errors="replace").splitlines()
                 if l.strip() and not l.startswith(noise)]
        cause = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        raise RuntimeError(f"int8 converter {cause}" + (f": {' | '.join(lines[-2:])[:200]}" if lines else ""))
    statistics = work / STATISTICS
    if calibrated is not None and statistics.exists():
        calibrated.statistics = statistics.read_text()
    return result.read_bytes()


def _main(request_path: str) -> int:
    from .export import Calibrations, TensorKey, saved_to_tflite

    request = json.loads(Path(request_path).read_text())
    work = Path(request["work"])
    keys = [TensorKey(k, tuple(s), d) for k, s, d in request["inputs"]]
    batches = [[row[str(j)] for j in range(len(keys))] for row in load_rows(work / "calibration.npz", request["samples"])]
    calibrated = Calibrations()
    tflite = saved_to_tflite(Path(request["saved_model"]), keys, "int8", calibration=batches,
                             int8_io=request["int8_io"], int8_mode=request["mode"], calibrated=calibrated)
    if calibrated.statistics:
        (work / STATISTICS).write_text(calibrated.statistics)
    (work / "model.tflite").write_bytes(tflite)
    return 0


if __name__ == "__main__":
    process_tree.guard_child()
    process_tree.exit_now(_main(sys.argv[1]))
