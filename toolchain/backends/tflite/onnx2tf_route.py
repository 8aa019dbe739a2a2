"""Running onnx2tf on a private, renamed copy of the prepared model, offline, inside the pass's child.

Traps handled here (shared notes, converter-traps.md): onnx2tf rewrites its input file, so it gets a
copy; its onnxsim subprocess is switched off (the prepared model is already simplified by onnxslim
and static); it downloads a calibration sample for image-like models unless the file is in its
working folder, so one is written there; names with ``:`` or ``@`` break TensorFlow scopes, so the
copy uses positional ``input_N`` / ``output_N`` names and safe tensor names; and it calls
``sys.exit`` on some failures, which becomes an ordinary exception carrying its last log lines.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import layout
from .activation_reuse import reused_activations

# onnx2tf.utils.common_functions.download_test_image_data looks for exactly this file in the cwd.
CALIBRATION_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_./-]")


@dataclass(frozen=True)
class Onnx2tfRun:
    """How one route asks onnx2tf: which inputs keep their ONNX axis order, and extra onnx2tf arguments.

    ``keep_inputs``: "native" (onnx2tf's channel-last for rank 3-5 inputs), "onnx" (keep the ONNX
    order at the interface; onnx2tf transposes inside), or "as-is" (no transposition at all: for
    inputs that are already channel-last in ONNX).
    """

    keep_inputs: str = "native"
    arguments: dict[str, Any] = field(default_factory=dict, hash=False)
    as_is: tuple[str, ...] = ()  # inputs taken as they are even in "native" mode (channel-last in ONNX already, or ids)
    validate_ops: bool = True    # onnx2tf's per-op check against onnxruntime (see without_op_validation)

    def perm_for(self, name: str, rank: int) -> tuple[int, ...]:
        """The axis order onnx2tf gives this input: the rule of its ``Input`` op, for our settings."""
        if self.keep_inputs in ("onnx", "as-is") or name in self.as_is or rank not in (3, 4, 5):
            return layout.identity(rank)
        return layout.channel_last(rank)


def safe_copy(proto, dest: Path, in_place: bool = False, write: bool = True) -> tuple[list[str], list[str]]:
    """Write a copy whose graph inputs/outputs are ``input_N``/``output_N`` and other names are scope-safe;
    ``in_place``: rename ``proto`` itself, for a caller whose private copy it is (no second copy of the weights);
    ``write=False`` (with ``in_place``): only rename, for a caller that gives ``convert`` the proto.

    Returns the positional names (inputs, outputs) that the copy uses.
    """
    import onnx

    if not in_place:
        proto = onnx.ModelProto.FromString(proto.SerializeToString())
    graph = proto.graph
    initializers = {t.name for t in graph.initializer}
    renames: dict[str, str] = {}
    user_inputs = [v for v in graph.input if v.name not in initializers]
    for i, value in enumerate(user_inputs):
        renames[value.name] = f"input_{i}"
    for i, value in enumerate(graph.output):
        renames.setdefault(value.name, f"output_{i}")

    def safe(name: str) -> str:
        if not name:
            return name
        if name not in renames:
            cleaned = _SAFE_NAME.sub("_", name)
            renames[name] = cleaned if cleaned == name else f"{cleaned}__{len(renames)}"
        return renames[name]

    def rename_graph(g) -> None:
        for value in [*g.input, *g.output, *g.value_info]:
            value.name = safe(value.name)
        for tensor in g.initializer:
            tensor.name = safe(tensor.name)
        for i, node in enumerate(g.node):
            node.name = _SAFE_NAME.sub("_", node.name) if node.name else f"{node.op_type}_{i}"
            node.input[:] = [safe(n) for n in node.input]
            node.output[:] = [safe(n) for n in node.output]
            for attribute in node.attribute:
                if attribute.g.node:
                    rename_graph(attribute.g)
                for sub in attribute.graphs:
                    rename_graph(sub)

    output_names = [renames[v.name] for v in graph.output]
    rename_graph(graph)
    if write:
        onnx.save_model(proto, str(dest))
    return [f"input_{i}" for i in range(len(user_inputs))], output_names


def _write_named(proto, path: Path) -> None:
    """What onnx2tf's op naming step (sng4onnx) leaves in its input file, from ``proto`` in memory: the
    same call onnx2tf makes, and on its failure the model as it was (onnx2tf only warns)."""
    import onnx
    from sng4onnx import generate

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            named = generate(onnx_graph=proto, non_verbose=True)
    except Exception:
        named = proto
    onnx.save_model(named, str(path))


def _write_calibration_sample(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    np.save(folder / CALIBRATION_SAMPLE_FILE, rng.random((20, 128, 128, 3), dtype=np.float32))


def convert(onnx_path: Path, work: Path, run: Onnx2tfRun, seed: int, proto=None):
    """Return onnx2tf's Keras model for the (already renamed) ONNX file, converted in ``work``.

    Given ``proto`` (that file's model, which the caller has not written yet), onnx2tf's first step,
    sng4onnx's op naming, runs on it here and its result is the file written: onnx2tf would have
    read the file, named, and written it again (0.45 s of load and save for an 88 MB ResNet-50).
    """
    import onnx
    import onnx2tf
    import tensorflow as tf
    import tf_keras

    tf_keras.backend.clear_session()
    tf.random.set_seed(seed)
    np.random.seed(seed)
    work.mkdir(parents=True, exist_ok=True)
    _write_calibration_sample(work, seed)
    named_here = {}
    if proto is not None:
        _write_named(proto, onnx_path)
        named_here["not_use_opname_auto_generate"] = True
    graph = proto.graph if proto is not None else onnx.load(str(onnx_path), load_external_data=False).graph
    inputs = graph.input
    names = [v.name for v in inputs]
    keep: dict[str, Any] = {}
    if run.keep_inputs == "onnx":  # onnx2tf asserts on any other rank; it never transposes those anyway
        keep["keep_ncw_or_nchw_or_ncdhw_input_names"] = [v.name for v in inputs
                                                         if len(v.type.tensor_type.shape.dim) in (3, 4, 5)]
    elif run.keep_inputs == "as-is":
        keep["keep_shape_absolutely_input_names"] = names
    elif run.as_is:
        keep["keep_shape_absolutely_input_names"] = list(run.as_is)
    captured = io.StringIO()
    previous = os.getcwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stdout(captured), reused_activations({n.op_type for n in graph.node}), \
                (contextlib.nullcontext() if run.validate_ops else without_op_validation()):
            model = onnx2tf.convert(
                input_onnx_file_path=str(onnx_path),
                output_folder_path=str(work / "saved_model"),
                not_use_onnxsim=True,
                disable_model_save=True,
                non_verbose=True,
                verbosity="error",
                **keep,
                **named_here,
                **run.arguments,
            )
    except SystemExit:
        raise RuntimeError(f"onnx2tf gave up: {_last_lines(captured.getvalue())}") from None
    finally:
        os.chdir(previous)
        (work / "onnx2tf.log").write_text(captured.getvalue(), encoding="utf-8", errors="replace")
    if model is None:
        raise RuntimeError(f"onnx2tf returned no model: {_last_lines(captured.getvalue())}")
    return model


@contextlib.contextmanager
def without_op_validation():
    """onnx2tf without its per-op validation: its own path for graphs onnxruntime cannot run in full.

    onnx2tf runs onnxruntime once for every node's output, then at each MatMul, Reshape, Add, Mul…
    builds a Keras model from the graph inputs up to that node and runs it, to pick axis orders by
    value: quadratic in the graph's length. On unrolled recurrent graphs (thousands of 2-D MatMul /
    gate ops, where the shapes leave one axis order) those Keras runs alone were 389 of onnx2tf's
    708 s on gru_audio (profiled). When its whole-graph onnxruntime run raises, onnx2tf skips the validation and chooses
    by shapes, so that run is made to raise here. The route's own parity in LiteRT still judges.
    """
    from onnx2tf import onnx2tf as core

    if not hasattr(core, "dummy_onnx_inference"):  # another onnx2tf: it validates as it always did
        yield
        return

    def refuse(**_):
        raise RuntimeError("per-op validation switched off by stackc (unrolled recurrent graph)")

    original, core.dummy_onnx_inference = core.dummy_onnx_inference, refuse
    try:
        yield
    finally:
        core.dummy_onnx_inference = original


def _last_lines(text: str, count: int = 3) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:])[:400] or "no message"
