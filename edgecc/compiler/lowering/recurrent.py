"""RNN, GRU and LSTM (opset 7, 14 and 22 forms; opset 1/3 models once the loader converts
them) lowered to one IR node each (ir/ops/recurrent.py has the semantics).

Every input may be a runtime tensor (the kernel reads each through a pointer), but W, R, B and
the LSTM peepholes P are computed at compile time when they can be: a weight that onnxruntime's
quantizer or torch's exporter leaves behind a chain of nodes over constants (Slice, Concat,
Unsqueeze, QuantizeLinear -> DequantizeLinear) becomes one float constant with the values that
chain gives at run time, so it is kept in flash rather than recomputed into the arena.
Activation names are matched without regard to case, as onnxruntime does; activation_alpha
and activation_beta are consumed in order by the functions that take an alpha (a beta),
over both directions, and the ones left without a value get their ONNX operator's default.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType, TensorType
from ...ir.ops import op_info
from ...ir.ops.recurrent import (ACTIVATIONS, DEFAULT_ACTIVATIONS, GATES, GateFn,
                                 RecurrentAttrs, roles, shape_error, work_size)
from ..registry import lowering
from .quantize_linear import dequantize_constant

_BY_LOWER = {name.lower(): name for name in ACTIVATIONS}


def _activations(ctx, op: str, directions: int):
    """The GateFn of every function of every direction, from the node's attributes."""
    names = list(ctx.attr("activations", []))
    per = len(DEFAULT_ACTIVATIONS[op])
    if not names:
        names = list(DEFAULT_ACTIVATIONS[op]) * directions
    elif len(names) == per and directions == 2:
        names = names * 2  # one direction's functions given: both use them
    if len(names) != per * directions:
        raise ctx.error(f"activations lists {len(names)} functions, expected {per} per "
                        f"direction ({per * directions})")
    alphas = [float(v) for v in ctx.attr("activation_alpha") or []]
    betas = [float(v) for v in ctx.attr("activation_beta") or []]
    fns = []
    for name in names:
        kind = _BY_LOWER.get(name.lower())
        if kind is None:
            raise ctx.error(f"activation '{name}' is not one of {', '.join(ACTIVATIONS)}")
        uses_alpha, uses_beta, alpha, beta = ACTIVATIONS[kind]
        if uses_alpha and alphas:
            alpha = alphas.pop(0)
        if uses_beta and betas:
            beta = betas.pop(0)
        fns.append(GateFn(kind, alpha if uses_alpha else 0.0, beta if uses_beta else 0.0))
    return tuple(fns)


def _attrs(ctx, op: str, node) -> RecurrentAttrs:
    direction = ctx.attr("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ctx.error(f"direction '{direction}' is not forward, reverse or bidirectional")
    layout = int(ctx.attr("layout", 0))
    if layout not in (0, 1):
        raise ctx.error(f"layout {layout} is not 0 or 1")
    if len(node.input) < 3 or not all(node.input[:3]):
        raise ctx.error("X, W and R are required")
    r_shape = ctx.type(node.input[2]).shape
    if len(r_shape) != 3:
        raise ctx.error(f"R must have rank 3, not {len(r_shape)}")
    hidden = int(ctx.attr("hidden_size", r_shape[2]))
    clip = ctx.attr("clip")
    if clip is not None and not float(clip) > 0:
        raise ctx.error(f"clip must be positive, not {clip}")
    return RecurrentAttrs(
        hidden, direction, layout,
        _activations(ctx, op, 2 if direction == "bidirectional" else 1),
        None if clip is None else float(clip),
        linear_before_reset=bool(ctx.attr("linear_before_reset", 0)) if op == "GRU" else False,
        input_forget=bool(ctx.attr("input_forget", 0)) if op == "LSTM" else False)


def _fold(ctx, name: str, depth: int = 0):
    """The value of tensor ``name`` if the IR nodes producing it (already lowered) depend on
    constants only, evaluated with their numpy references; else None."""
    if name in ctx.graph.constants:
        return ctx.graph.constants[name]
    producer = next((n for n in ctx.graph.nodes if name in n.outputs), None)
    if producer is None or depth > 32:
        return None
    args = [_fold(ctx, i, depth + 1) for i in producer.inputs if i]
    if any(a is None for a in args):
        return None
    if producer.op == "DequantizeLinear":  # no IR reference: fold_qdq needs it unfolded
        values = [dequantize_constant(producer.attrs.quant, args[0])]
    else:
        reference = op_info(producer.op).reference
        values = reference(producer, args) if reference else None
    if values is None:
        return None
    t = ctx.graph.types[name]
    return np.asarray(values[list(producer.outputs).index(name)], t.dtype.np_dtype).reshape(t.shape)


def lower_recurrent(ctx, node):
    op = node.op_type
    x_t = ctx.type(node.input[0])
    if x_t.dtype not in (DType.FLOAT32, DType.FLOAT64):
        raise ctx.error(f"{op} on {x_t.dtype.name.lower()} is not supported")
    attrs = _attrs(ctx, op, node)
    in_roles, out_roles = roles(op)
    inputs = [ctx.input(i) for i in range(len(in_roles))]
    outputs = [node.output[i] if i < len(node.output) else "" for i in range(len(out_roles) - 1)]
    shapes = {}
    for role, name in zip(in_roles + out_roles, inputs + outputs):
        if not name:
            continue
        t = ctx.type(name)
        want = DType.INT32 if role == "sequence_lens" else x_t.dtype
        if t.dtype != want:
            raise ctx.error(f"{role} is {t.dtype.name.lower()}, expected {want.name.lower()}")
        shapes[role] = t.shape
    broken = shape_error(op, attrs, shapes)
    if broken:
        raise ctx.error(broken)
    for i, role in enumerate(in_roles):
        if role in ("W", "R", "B", "P") and inputs[i] and inputs[i] not in ctx.graph.constants:
            value = _fold(ctx, inputs[i])
            if value is not None:
                inputs[i] = ctx.add_constant(f"{inputs[i]}_{role}", value)
    work = ctx.temp(f"{node.name or op}_work",
                    TensorType(x_t.dtype, (work_size(op, attrs.hidden),)))
    ctx.emit(op, inputs, outputs + [work], attrs)


for _op in GATES:
    lowering(_op)(lower_recurrent)
