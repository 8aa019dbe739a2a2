"""onnxslim's rounds as stackc runs them: to a fixed point, with onnx's shape inference between
them and without sympy (``onnxslim_core``). Preparation's ``optimize`` (engine onnxslim) and the
TFLite backend's shape folding both use ``slim_to_fixed_point``.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

MAX_ROUNDS = 10  # onnxslim's own limit (ONNXSLIM_MAX_ITER)
SHAPE_INFERENCE = "onnx (data propagation)"  # recorded in the optimize notes: the engine that infers shapes between rounds
SYMBOLIC_MODULE = "onnxslim.third_party.symbolic_shape_infer"


def onnxslim_core():
    """``onnxslim.core`` (0.1.98, pinned), imported without its symbolic shape inference and so without sympy.

    ``onnxslim.core`` imports ``SymbolicShapeInference`` at module level, whose package imports sympy.
    Unless onnxslim is already loaded, a stand-in module takes that name first; its inference always
    fails, so a direct ``onnxslim.slim`` in this process falls back to onnx's inference, as stackc's
    rounds use. Preparation and the TFLite shape folding both call ``slim_to_fixed_point`` below, so
    their result does not depend on which was imported first.
    """
    if "onnxslim.core" not in sys.modules and SYMBOLIC_MODULE not in sys.modules:
        stand_in = types.ModuleType(SYMBOLIC_MODULE, "stackc: symbolic shape inference is not loaded (see onnxlib/onnxslim_rounds.py)")
        stand_in.SymbolicShapeInference = _NoSymbolicInference
        sys.modules[SYMBOLIC_MODULE] = stand_in
    from onnxslim import core

    return core


class _NoSymbolicInference:
    @staticmethod
    def infer_shapes(*args, **kwargs):
        raise RuntimeError("stackc infers shapes with onnx, not onnxslim's symbolic inference")


def slim_to_fixed_point(proto, skip_fusion_patterns=None, skip_optimizations=None):
    """``onnxslim.slim``'s rounds (fold, fuse, infer shapes), stopped once a round changes nothing;
    returns the model and whether it settled within MAX_ROUNDS.

    Two things differ from onnxslim's: shapes come from ``infer_shapes_of`` (onnx's inference), and
    "nothing changed" means the same nodes, shapes and initializers. onnxslim compares whole graphs
    and on some transformers never sees two rounds alike, so it ran all ten (seconds each at 85 MB).
    """
    core = onnxslim_core()
    from onnxslim.utils import TensorInfo, init_logging, update_outputs_dims

    init_logging(False)
    core.freeze(proto)
    output_dims = {TensorInfo(o).name: TensorInfo(o).shape for o in proto.graph.output}
    core.OptimizationSettings.reset(skip_optimizations)
    if not core.OptimizationSettings.enabled():
        return update_outputs_dims(infer_shapes_of(proto), output_dims=output_dims), True
    model, seen = proto, _structure(proto.graph)
    for _ in range(MAX_ROUNDS):
        model = infer_shapes_of(core.optimize(model, skip_fusion_patterns, None))
        now = _structure(model.graph)
        if now == seen:
            return update_outputs_dims(model, output_dims=output_dims), True
        seen = now
    return update_outputs_dims(model, output_dims=output_dims), False


def infer_shapes_of(model):
    """onnx's shape inference of ``model``, with data propagation (``Shape -> Gather -> Concat`` feeding a
    Reshape gives known dims, as symbolic inference did): in memory without its large weights
    (onnxlib/shape_inference.py), or from a file past protobuf's 2 GB. ``model`` is spent: the callers
    replace it by the result (in memory, the result is ``model`` itself)."""
    from .shape_inference import infer_shapes

    try:
        return infer_shapes(model, data_prop=True, in_place=True)
    except ValueError:  # past 2 GB even without its large weights: onnx infers from a file, weights beside it
        return _infer_on_disk(model)


def _infer_on_disk(model):
    """Past 2 GB: infer from a temporary file, the weights beside it. Saving moves ``model``'s weights
    into that file, so ``model`` is spent: the callers pass a model they replace by the result."""
    import tempfile

    import onnx

    with tempfile.TemporaryDirectory(prefix="stackc-shapes-") as folder:
        source, inferred = Path(folder) / "model.onnx", Path(folder) / "inferred.onnx"
        onnx.save_model(model, source, save_as_external_data=True, location="weights.bin")
        onnx.shape_inference.infer_shapes_path(str(source), str(inferred), data_prop=True)
        return onnx.load(inferred)


def _structure(graph) -> tuple:
    nodes = tuple((n.op_type, n.domain, tuple(n.input), tuple(n.output),
                   tuple(a.SerializeToString() for a in n.attribute)) for n in graph.node)
    shapes = tuple(v.SerializeToString() for v in graph.value_info)
    return nodes, shapes, tuple((t.name, t.data_type, tuple(t.dims)) for t in graph.initializer)
