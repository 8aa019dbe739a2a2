"""Concrete input shapes: what a world does with dynamic dims, and the shape each input takes."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError


@dataclass(frozen=True)
class ShapeDefaults:
    """How the world fills dynamic dims: fixed for good (``static``) or only for parity samples."""

    static: bool
    default_dim: int
    dims: dict[str, int] = field(default_factory=dict, hash=False)

    def value_for(self, dim_name: str) -> int:
        return self.dims.get(dim_name, self.default_dim)



def concrete_shapes(inputs, user_shapes, rule: ShapeDefaults | None, fix_all: bool) -> dict[str, tuple[int, ...]]:
    """The shape each input will have: user values first, then names shared with them, then defaults.

    With ``fix_all`` false, only inputs the user named (or that share a named dim with them) change.
    """
    by_name = {spec.name: spec for spec in inputs}
    for name in user_shapes:
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise UsageError(f"--shape names input '{name}', which the model does not have (inputs: {known})")
    named: dict[str, int] = {}
    for name, dims in user_shapes.items():
        spec = by_name[name]
        if spec.shape is not None and len(spec.shape) != len(dims):
            raise UsageError(f"--shape {name}: the input has rank {len(spec.shape)}, got {len(dims)} dims")
        for declared, value in zip(spec.shape or (), dims):
            if isinstance(declared, int) and declared != value:
                raise UsageError(f"--shape {name}: dim {declared} is fixed in the model, got {value}")
            if isinstance(declared, str):
                named[declared] = value
    result: dict[str, tuple[int, ...]] = {}
    for spec in inputs:
        if spec.name in user_shapes:
            result[spec.name] = tuple(user_shapes[spec.name])
            continue
        if spec.shape is None:
            continue
        dims = []
        for dim in spec.shape:
            if isinstance(dim, int):
                dims.append(dim)
            elif isinstance(dim, str) and dim in named:
                dims.append(named[dim])
            elif fix_all:
                dims.append(rule.value_for(dim) if (rule and isinstance(dim, str)) else
                            (rule.default_dim if rule else 1))
            else:
                dims.append(dim)
        if all(isinstance(d, int) for d in dims):
            result[spec.name] = tuple(dims)
    return result


def shape_assumptions(inputs, user_shapes, rule: ShapeDefaults | None, world: str, skip=()) -> tuple[list[str], list[str]]:
    """What a world decides about dims nobody gave: (assumed, unasked).

    ``assumed``: the dims the world fills on purpose, as lines for the summary: an input's leading
    (batch) dim takes ``default_dim``, a dim the world names in ``[shapes] dims`` (seq = 16) its value.
    ``unasked``: ``--shape`` suggestions for the inputs that still hold a dynamic dim nobody named, which a
    static world must not guess (a sequence length of 1 is a useless model).
    """
    if rule is None:
        return [], []
    shared = {d: v for name, dims in user_shapes.items() for spec in inputs if spec.name == name
              for d, v in zip(spec.shape or (), dims) if isinstance(d, str)}
    assumed, unasked = [], []
    for spec in inputs:
        if spec.name in user_shapes or spec.name in skip or spec.shape is None:
            continue
        suggestion, unknown = [], False
        for position, dim in enumerate(spec.shape):
            if isinstance(dim, int):
                suggestion.append(str(dim))
            elif isinstance(dim, str) and dim in shared:
                suggestion.append(str(shared[dim]))
            elif position == 0:
                suggestion.append(str(rule.default_dim))
                assumed.append(f"{spec.name}: leading (batch) dim {dim or '?'} = {rule.default_dim}")
            elif isinstance(dim, str) and dim in rule.dims:
                suggestion.append(str(rule.dims[dim]))
                assumed.append(f"{spec.name}: dim {dim} = {rule.dims[dim]} (target {world} [shapes] dims)")
            else:
                suggestion.append(f"<{dim or 'dim' + str(position)}>")
                unknown = True
        if unknown:
            unasked.append(f"--shape {spec.name}={','.join(suggestion)}")
    return list(dict.fromkeys(assumed)), unasked


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME=D0,D1`` split at the last ``=`` (input names may hold ``:``, ``/``, ``.`` and ``=``)."""
    name, sep, dims_text = text.rpartition("=")
    if not sep:
        name, dims_text = "", text
    try:
        dims = tuple(int(d) for d in dims_text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"--shape '{text}': dims must be integers like input=1,3,224,224") from None
    if not dims or any(d < 1 for d in dims):
        raise UsageError(f"--shape '{text}': dims must be positive integers")
    return name, dims
