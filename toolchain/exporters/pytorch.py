"""PyTorch sources: ExportedProgram (.pt2) and TorchScript (.pt/.jit) to ONNX with torch.onnx.export.

The dynamo-based exporter is tried first and the TorchScript-based one is the fallback; the
method that worked, and why the others did not, go to the manifest. A .pt2 reaches
``torch.export.load`` only after ``allowlist.check_pt2`` has held every member to the current
torch.export.save layout: weights-only pickles, a plain aten graph, no legacy or native members.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError, MissingDependencyError, PassError
from ..onnxlib.model import load_onnx, save_onnx
from .allowlist import check_pt2
from ._common import SCALAR_KINDS, ExportedSource, SourceInput, as_python_number, example_inputs, finish_export, first_line, quiet_exporter, tidy_onnx

OPSET = 18  # the dynamo exporter's lowest well-trodden opset; every stackc backend reads it
METHODS = ("dynamo", "torchscript")
_SCALAR_TYPES = {"float": "float", "int": "int", "bool": "bool", "number": "float", "Scalar": "float"}


def _torch():
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("a PyTorch source needs the 'torch' package, which is not installed",
                                     "pip install 'stackc[torch]'") from None
    return torch


def export(kind: str, path: Path, work_dir: Path, *, shapes, inputs_path, target, seed,
           bindings=None) -> ExportedSource:
    torch = _torch()
    if kind == "torch-export":
        check_pt2(path)  # before torch.export.load: it unpickles, dlopens and execs what the archive holds
        module, declared, recorded = _load_exported_program(path, torch)
    else:
        module, declared, recorded = _load_torchscript(path, torch)
    label = f"{path.name} ({'ExportedProgram' if kind == 'torch-export' else 'TorchScript'})"
    examples = example_inputs(label, declared, shapes, inputs_path, target, seed, recorded, bindings)
    args = tuple(_argument(examples.values[d.name], d, torch) for d in declared)
    outputs = _run(module, args, torch, label)
    output_names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    if examples.bound:
        module, declared, args = _specialise(module, declared, args, examples.bound, label, torch)
    input_names = [d.name for d in declared]
    dynamic = _dynamic_axes(declared, shapes, target)
    onnx_path = work_dir / "exported.onnx"
    failures: dict[str, BaseException] = {}
    for method in METHODS:
        try:
            with quiet_exporter():
                _export(method, module, args, onnx_path, input_names, output_names, dynamic, torch)
            break
        except Exception as e:  # each exporter fails in its own way; the next one may work
            failures[method] = e
    else:
        detail = "; ".join(f"{m}: {first_line(e)}" for m, e in failures.items())
        raise PassError(f"torch.onnx.export could not export {path.name}: {detail}")
    facts = {
        "framework": "pytorch",
        "framework_version": torch.__version__,
        "exporter": f"torch.onnx.export ({method})",
        "method": method,
        "failed_methods": {m: type(e).__name__ for m, e in failures.items()},
        "dynamic_axes": {k: {str(a): n for a, n in v.items()} for k, v in dynamic.items()},
    }
    if examples.bound:
        facts["bound"] = {n: v.tolist() for n, v in examples.bound.items()}
    return finish_export(tidy_onnx(load_onnx(onnx_path)), onnx_path, outputs, examples,
                         f"torch {torch.__version__} eager", OPSET, facts)


# -- loading ---------------------------------------------------------------------------------------


def _load_exported_program(path: Path, torch):
    try:
        with quiet_exporter():
            program = torch.export.load(str(path))
    except Exception as e:
        raise InputError(f"{path.name}: torch.export.load cannot read it ({first_line(e)})") from None
    values = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}
    declared = []
    for name in program.graph_signature.user_inputs:
        value = values.get(name)
        if isinstance(value, torch.Tensor):
            dims = tuple(d if isinstance(d, int) else None for d in value.shape)
            declared.append(SourceInput(name, "tensor", _numpy_dtype(value.dtype, torch), dims))
    recorded = None
    example = getattr(program, "example_inputs", None)
    if example is not None:
        args = [a for a in torch.utils._pytree.tree_flatten(example)[0] if isinstance(a, torch.Tensor)]
        if len(args) == len(declared):
            recorded = {d.name: a.detach().cpu().numpy() for d, a in zip(declared, args)}
    return program, declared, recorded


def _load_torchscript(path: Path, torch):
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise InputError(f"{path.name}: torch.jit.load cannot read it ({first_line(e)})") from None
    module.eval()
    declared = []
    for argument in module.forward.schema.arguments[1:]:  # [0] is self
        type_name = str(argument.type)
        default = argument.default_value if argument.has_default_value() else None
        if type_name in _SCALAR_TYPES:
            declared.append(SourceInput(argument.name, _SCALAR_TYPES[type_name], default=default))
        elif type_name.startswith("Tensor"):
            declared.append(SourceInput(argument.name, "tensor"))
        else:
            raise InputError(f"{path.name}: forward parameter '{argument.name}' is a {type_name}; only tensors and "
                             "Python numbers can be exported")
    return module, declared, None


def _specialise(module, declared: list[SourceInput], args: tuple, bound: dict[str, np.ndarray], label: str, torch):
    """The module with ``--bind`` inputs fixed to their values, so control flow on them folds before export.

    TorchScript: a traced wrapper passing the constants, frozen (inlined, constant-propagated): an
    ``if sr == 16000`` keeps only the taken branch. An ExportedProgram is re-exported through a wrapper.
    """
    positions = {d.name: i for i, d in enumerate(declared)}
    fixed = {positions[n]: args[positions[n]] for n in bound}
    free = [d for d in declared if d.name not in bound]
    free_args = tuple(a for i, a in enumerate(args) if i not in fixed)

    class Bound(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *given):
            rest = iter(given)
            return _call(self.inner, tuple(fixed[i] if i in fixed else next(rest) for i in range(len(declared))))

    inner = module.module() if hasattr(module, "graph_signature") else module
    if hasattr(module, "graph_signature"):
        return Bound(inner).eval(), free, free_args
    try:
        with quiet_exporter(), torch.no_grad():
            frozen = torch.jit.freeze(torch.jit.trace(Bound(inner).eval(), free_args, check_trace=False))
    except Exception as e:
        raise PassError(f"{label}: cannot specialise it to --bind {', '.join(bound)} ({first_line(e)})") from None
    return frozen, free, free_args


def _numpy_dtype(dtype, torch) -> str:
    return str(torch.empty((), dtype=dtype).numpy().dtype)


# -- running and exporting ------------------------------------------------------------------------


def _argument(value: np.ndarray, declared: SourceInput, torch):
    if declared.kind in SCALAR_KINDS:
        return as_python_number(value, declared.kind)
    return torch.from_numpy(np.ascontiguousarray(value))


def _call(module, args):
    return module.module()(*args) if hasattr(module, "graph_signature") else module(*args)


def _run(module, args, torch, label) -> list[np.ndarray]:
    try:
        with torch.no_grad():
            result = _call(module, args)
    except Exception as e:
        raise InputError(f"{label} rejects the example inputs: {first_line(e)}") from None
    leaves = torch.utils._pytree.tree_flatten(result)[0]
    return [leaf.detach().cpu().numpy() for leaf in leaves if isinstance(leaf, torch.Tensor)]


def _dynamic_axes(declared: list[SourceInput], shapes, target) -> dict[str, dict[int, str]]:
    """A static world exports static shapes; otherwise the batch dim stays dynamic unless --shape fixed it."""
    if target is None or target.shapes.static:
        return {}
    return {d.name: {0: "batch"} for d in declared if d.kind == "tensor" and d.name not in shapes}


def _export(method, model, args, onnx_path, input_names, output_names, dynamic, torch) -> None:
    if method == "dynamo":
        dynamic_shapes = None
        if dynamic and not hasattr(model, "graph_signature"):
            dynamic_shapes = tuple({0: torch.export.Dim.DYNAMIC} if n in dynamic else None for n in input_names)
        program = torch.onnx.export(model, args, None, dynamo=True, opset_version=OPSET, input_names=input_names,
                                    output_names=output_names, dynamic_shapes=dynamic_shapes, verbose=False)
        save_onnx(program.model_proto, onnx_path)
        return
    module = model.module() if hasattr(model, "graph_signature") else model
    torch.onnx.export(module, args, str(onnx_path), dynamo=False, opset_version=OPSET, input_names=input_names,
                      output_names=output_names, dynamic_axes=dynamic or None, verbose=False)
