"""LSTM, GRU and RNN, unrolled over the (static) sequence into linear + activation ops.

MIL's own ``lstm``/``gru`` ops are fp32-only and MIL's GRU cannot express ONNX's
``linear_before_reset=1`` (PyTorch's GRU); unrolling keeps ONNX's exact equations, runs in the
program's compute precision and needs no recurrent op in the reference interpreter. The price is
program size proportional to the sequence length. Gate order: ONNX LSTM is i, o, f, c; GRU is z, r, h.
"""
from __future__ import annotations

import numpy as np

from . import const_input, converts, is_const, np_dtype, shape_of

_ACTIVATIONS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu"}


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _seq_first(x, states, layout):
    """layout=1 (batch-first) X [batch, seq, in] and initial states [batch, dirs, H] as layout 0 has them."""
    if not layout:
        return x, states
    mb = _mb()
    swap = [1, 0, 2]
    return mb.transpose(x=x, perm=swap), [None if v is None else np.transpose(v, swap) if is_const(v)
                                          else mb.transpose(x=v, perm=swap) for v in states]


def _batch_first(outputs, layout):
    """Y [seq, dirs, batch, H] -> [batch, seq, dirs, H]; final states [dirs, batch, H] -> [batch, dirs, H]."""
    if not layout:
        return outputs
    mb = _mb()
    return [mb.transpose(x=outputs[0], perm=[2, 0, 1, 3])] + [mb.transpose(x=v, perm=[1, 0, 2]) for v in outputs[1:]]


def _check_common(ctx, x, sequence_lens, activations, clip, layout, defaults):
    if clip is not None:
        raise ctx.fail(f"{ctx.op_type} with clip is not supported")
    if sequence_lens is not None:
        lens = const_input(ctx, sequence_lens, f"{ctx.op_type} sequence_lens")
        if np.any(lens != shape_of(x)[1 if layout else 0]):
            raise ctx.fail(f"{ctx.op_type} with sequence_lens shorter than the sequence is not supported")
    activations = list(activations or defaults)
    if any(a not in _ACTIVATIONS for a in activations):
        raise ctx.fail(f"{ctx.op_type} activations {activations} are not supported")
    return [_ACTIVATIONS[a] for a in activations]


def _directions(direction):
    return {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[direction]


def _state(initial, direction_index, batch, hidden, dtype):
    mb = _mb()
    if initial is None:
        return np.zeros((batch, hidden), dtype=dtype)
    if is_const(initial):
        return np.ascontiguousarray(initial[direction_index]).astype(dtype)
    picked = mb.slice_by_index(x=initial, begin=[direction_index, 0, 0], end=[direction_index + 1, batch, hidden])
    return mb.reshape(x=picked, shape=[batch, hidden])


def _project_inputs(x, weight, bias):
    """x [seq, batch, in] @ weight.T + bias for every step at once -> a list of [batch, gates] per step."""
    mb = _mb()
    seq, batch, _ = shape_of(x)
    projected = mb.linear(x=x, weight=weight, bias=bias)
    if seq == 1:
        return [mb.reshape(x=projected, shape=[batch, weight.shape[0]])]
    return [mb.reshape(x=mb.slice_by_index(x=projected, begin=[t, 0, 0], end=[t + 1, batch, weight.shape[0]]),
                       shape=[batch, weight.shape[0]]) for t in range(seq)]


def _act(name, value):
    return getattr(_mb(), name)(x=value)


def _stack_outputs(per_direction, seq):
    """Y [seq, dirs, batch, H] and Y_h [dirs, batch, H] from each direction's per-step states."""
    mb = _mb()
    steps = [mb.stack(values=[states[t] for states in per_direction], axis=0) for t in range(seq)]
    y = mb.stack(values=steps, axis=0) if seq > 1 else mb.expand_dims(x=steps[0], axes=[0])
    return y


@converts("LSTM")
def lstm(ctx, inputs, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
         direction="forward", hidden_size, input_forget=0, layout=0):
    mb = _mb()
    x, w, r = inputs[0], inputs[1], inputs[2]
    pad = list(inputs) + [None] * (8 - len(inputs))
    b, sequence_lens, initial_h, initial_c, peephole = pad[3], pad[4], pad[5], pad[6], pad[7]
    gate_act, cell_act, out_act = _check_common(ctx, x, sequence_lens, activations, clip, layout,
                                                ["Sigmoid", "Tanh", "Tanh"] * 2)[:3]
    if input_forget:
        raise ctx.fail("LSTM with input_forget=1 is not supported")
    peephole = None if peephole is None else const_input(ctx, peephole, "LSTM peephole")
    x, (initial_h, initial_c) = _seq_first(x, [initial_h, initial_c], layout)
    w, r = const_input(ctx, w, "LSTM W"), const_input(ctx, r, "LSTM R")
    dtype = np_dtype(x)
    seq, batch, _ = shape_of(x)
    hidden = int(hidden_size)
    finals_h, finals_c, per_direction = [], [], []
    for d, backwards in enumerate(_directions(direction)):
        bias = np.zeros(8 * hidden, np.float32) if b is None else const_input(ctx, b, "LSTM B")[d]
        steps = _project_inputs(x, w[d].astype(dtype), (bias[:4 * hidden] + bias[4 * hidden:]).astype(dtype))
        h = _state(initial_h, d, batch, hidden, dtype)
        c = _state(initial_c, d, batch, hidden, dtype)
        states = [None] * seq
        for t in (reversed(range(seq)) if backwards else range(seq)):
            gates = mb.add(x=steps[t], y=mb.linear(x=h, weight=r[d].astype(dtype)))
            i, o, f, g = mb.split(x=gates, num_splits=4, axis=-1)
            if peephole is not None:  # P = [Pi, Po, Pf]: i and f see the previous cell, o the new one
                p_i, p_o, p_f = (v.astype(dtype) for v in np.split(peephole[d], 3))
                i, f = mb.add(x=i, y=mb.mul(x=c, y=p_i)), mb.add(x=f, y=mb.mul(x=c, y=p_f))
            c = mb.add(x=mb.mul(x=_act(gate_act, f), y=c), y=mb.mul(x=_act(gate_act, i), y=_act(cell_act, g)))
            if peephole is not None:
                o = mb.add(x=o, y=mb.mul(x=c, y=p_o))
            h = mb.mul(x=_act(gate_act, o), y=_act(out_act, c))
            states[t] = h
        per_direction.append(states)
        finals_h.append(h)
        finals_c.append(c)
    y = _stack_outputs(per_direction, seq)
    return _batch_first([y, mb.stack(values=finals_h, axis=0), mb.stack(values=finals_c, axis=0)], layout)


@converts("GRU")
def gru(ctx, inputs, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
        direction="forward", hidden_size, layout=0, linear_before_reset=0):
    mb = _mb()
    x, w, r = inputs[0], inputs[1], inputs[2]
    pad = list(inputs) + [None] * (6 - len(inputs))
    b, sequence_lens, initial_h = pad[3], pad[4], pad[5]
    gate_act, out_act = _check_common(ctx, x, sequence_lens, activations, clip, layout, ["Sigmoid", "Tanh"] * 2)[:2]
    x, (initial_h,) = _seq_first(x, [initial_h], layout)
    w, r = const_input(ctx, w, "GRU W"), const_input(ctx, r, "GRU R")
    dtype = np_dtype(x)
    seq, batch, _ = shape_of(x)
    hidden = int(hidden_size)
    finals, per_direction = [], []
    for d, backwards in enumerate(_directions(direction)):
        bias = np.zeros(6 * hidden, np.float32) if b is None else const_input(ctx, b, "GRU B")[d]
        w_bias, r_bias = bias[:3 * hidden].astype(dtype), bias[3 * hidden:].astype(dtype)
        recurrent = r[d].astype(dtype)
        steps = _project_inputs(x, w[d].astype(dtype), w_bias)
        h = _state(initial_h, d, batch, hidden, dtype)
        states = [None] * seq
        for t in (reversed(range(seq)) if backwards else range(seq)):
            xz, xr, xh = mb.split(x=steps[t], num_splits=3, axis=-1)
            if linear_before_reset:
                hz, hr, hh = mb.split(x=mb.linear(x=h, weight=recurrent, bias=r_bias), num_splits=3, axis=-1)
                z = _act(gate_act, mb.add(x=xz, y=hz))
                reset = _act(gate_act, mb.add(x=xr, y=hr))
                candidate = _act(out_act, mb.add(x=xh, y=mb.mul(x=reset, y=hh)))
            else:
                hz, hr = mb.split(x=mb.linear(x=h, weight=recurrent[:2 * hidden], bias=r_bias[:2 * hidden]),
                                  num_splits=2, axis=-1)
                z = _act(gate_act, mb.add(x=xz, y=hz))
                reset = _act(gate_act, mb.add(x=xr, y=hr))
                gated = mb.linear(x=mb.mul(x=reset, y=h), weight=recurrent[2 * hidden:], bias=r_bias[2 * hidden:])
                candidate = _act(out_act, mb.add(x=xh, y=gated))
            # (1 - z) * candidate + z * h
            h = mb.add(x=candidate, y=mb.mul(x=z, y=mb.sub(x=h, y=candidate)))
            states[t] = h
        per_direction.append(states)
        finals.append(h)
    y = _stack_outputs(per_direction, seq)
    return _batch_first([y, mb.stack(values=finals, axis=0)], layout)


@converts("RNN")
def rnn(ctx, inputs, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
        direction="forward", hidden_size, layout=0):
    """H_t = f(X_t W^T + H_{t-1} R^T + Wb + Rb), unrolled like LSTM and GRU."""
    mb = _mb()
    x, w, r = inputs[0], inputs[1], inputs[2]
    pad = list(inputs) + [None] * (6 - len(inputs))
    b, sequence_lens, initial_h = pad[3], pad[4], pad[5]
    act = _check_common(ctx, x, sequence_lens, activations, clip, layout, ["Tanh"] * 2)[0]
    x, (initial_h,) = _seq_first(x, [initial_h], layout)
    w, r = const_input(ctx, w, "RNN W"), const_input(ctx, r, "RNN R")
    dtype = np_dtype(x)
    seq, batch, _ = shape_of(x)
    hidden = int(hidden_size)
    finals, per_direction = [], []
    for d, backwards in enumerate(_directions(direction)):
        bias = np.zeros(2 * hidden, np.float32) if b is None else const_input(ctx, b, "RNN B")[d]
        steps = _project_inputs(x, w[d].astype(dtype), (bias[:hidden] + bias[hidden:]).astype(dtype))
        h = _state(initial_h, d, batch, hidden, dtype)
        states = [None] * seq
        for t in (reversed(range(seq)) if backwards else range(seq)):
            h = _act(act, mb.add(x=steps[t], y=mb.linear(x=h, weight=r[d].astype(dtype))))
            states[t] = h
        per_direction.append(states)
        finals.append(h)
    return _batch_first([_stack_outputs(per_direction, seq), mb.stack(values=finals, axis=0)], layout)
