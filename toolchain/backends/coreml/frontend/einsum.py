"""Einsum: every operand laid out over the union of its labels (transpose + expand_dims), multiplied with
broadcasting, and the labels the output drops summed out. Repeated labels in one operand (``ii->i``)
take the diagonal first (a constant identity mask, then a sum); ``...`` becomes unused labels.
"""
from __future__ import annotations

import string

import numpy as np

from . import aligned, converts, is_const, np_dtype, rank_of


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _parse(ctx, equation: str, ranks: list[int]) -> tuple[list[str], str]:
    text = equation.replace(" ", "")
    lhs, arrow, rhs = text.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ctx.fail(f"Einsum equation '{equation}' has {len(terms)} operands, the node {len(ranks)}")
    spare = [c for c in string.ascii_letters if c not in text]
    widths = [r - (len(t) - 3) for t, r in zip(terms, ranks) if "..." in t]
    ellipsis = "".join(spare[:max(widths, default=0)])
    terms = [t.replace("...", ellipsis[len(ellipsis) - (r - (len(t) - 3)):]) if "..." in t else t
             for t, r in zip(terms, ranks)]
    if arrow:
        rhs = rhs.replace("...", ellipsis)
    else:
        counts = {c: "".join(terms).count(c) for c in set("".join(terms))}
        rhs = ellipsis + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ellipsis))
    if any(len(t) != r for t, r in zip(terms, ranks)):
        raise ctx.fail(f"Einsum equation '{equation}' does not match the operand ranks {ranks}")
    return terms, rhs


def _diagonal(x, term: str):
    """Collapse each repeated label of one operand onto its diagonal."""
    mb = _mb()
    while len(set(term)) < len(term):
        label = next(c for c in term if term.count(c) > 1)
        p, q = term.index(label), term.index(label, term.index(label) + 1)
        size = x.shape[p] if is_const(x) else int(x.shape[p])
        shape = [1] * len(term)
        shape[p] = shape[q] = size
        mask = np.eye(size).reshape(shape)
        mask = mask.astype(np_dtype(x))
        x = np.sum(x * mask, axis=q) if is_const(x) else mb.reduce_sum(x=mb.mul(x=x, y=mask), axes=[q], keep_dims=False)
        term = term[:q] + term[q + 1:]
    return x, term


def _laid_out(x, term: str, order: str):
    """``x`` transposed to ``order``'s label order, with size-1 axes for the labels it lacks."""
    mb = _mb()
    perm = sorted(range(len(term)), key=lambda i: order.index(term[i]))
    if perm != list(range(len(term))):
        x = np.transpose(x, perm) if is_const(x) else mb.transpose(x=x, perm=perm)
    missing = [i for i, c in enumerate(order) if c not in term]
    if missing:
        x = np.expand_dims(x, tuple(missing)) if is_const(x) else mb.expand_dims(x=x, axes=missing)
    return x


@converts("Einsum")
def einsum(ctx, inputs, *, equation):
    mb = _mb()
    operands = aligned(*inputs)
    terms, rhs = _parse(ctx, equation, [rank_of(v) for v in operands])
    pairs = [_diagonal(v, t) for v, t in zip(operands, terms)]
    order = rhs + "".join(dict.fromkeys(c for _, t in pairs for c in t if c not in rhs))
    product = None
    for value, term in pairs:
        value = _laid_out(value, term, order)
        product = value if product is None else mb.mul(x=product, y=value)
    if len(order) > len(rhs):
        product = mb.reduce_sum(x=product, axes=list(range(len(rhs), len(order))), keep_dims=False)
    return [product]
