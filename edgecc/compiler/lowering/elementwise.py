"""Pointwise ops: unary activations and math, Identity/Dropout, broadcasting binaries (Cast:
cast.py).

This module is also the template op (copy it to add one): a lowering registered with
``@lowering``, IR facts with ``ir_op`` (numpy reference for constant folding, elementwise
for in-place planning), and a C kernel in backends/generic/elementwise.py.
"""
from __future__ import annotations

import numpy as np

from ...ir import TensorType, UnaryAttrs
from ...ir.ops.elementwise import UNARY_ATTR_FIELDS, UNARY_DEFAULTS, UNARY_INTEGER
from ..registry import lowering


@lowering(*UNARY_DEFAULTS)
def lower_unary(ctx, node):
    defaults = UNARY_DEFAULTS[node.op_type]
    fields = UNARY_ATTR_FIELDS.get(node.op_type, {})
    values = {fields.get(k, k): ctx.attr(k, v) for k, v in defaults.items()}
    attrs = UnaryAttrs(**values)
    x_type = ctx.type(node.input[0])
    dtype = x_type.dtype
    integer = dtype.np_dtype.kind in "iu" and not dtype.packed
    if not (dtype.is_float or (integer and node.op_type in UNARY_INTEGER)):
        raise ctx.error(f"{node.op_type} on {x_type.dtype.name.lower()} is not supported")
    ctx.emit(node.op_type, [node.input[0]], [node.output[0]], attrs)


def _scalar(value):
    """A compile-time scalar input (shape [] or [1]) as a Python number, or None."""
    if value is None:
        return None
    flat = np.asarray(value).reshape(-1)
    return None if flat.size == 0 else flat[0].item()


def _is_constant(ctx, name: str) -> bool:
    return not name or name in ctx.graph.constants or ctx.materialize(name) is not None


@lowering("Clip")
def lower_clip(ctx, node):
    """Clip -> Clip[alpha=min, beta=max]; a missing bound is the type's lowest/largest value,
    as ONNX says (numeric_limits lowest()/max()): for floats the largest finite one, so +-Inf
    clip to it as in onnxruntime (an explicit infinite bound leaves them). The backend drops
    comparisons that never clip. Bounds known only at run time (graph inputs): Min(Max(x, min),
    max), which is Clip's value, NaN included, and max wherever min > max."""
    x_type = ctx.type(node.input[0])
    if ctx.opset >= 11 and not all(_is_constant(ctx, ctx.input(i)) for i in (1, 2)):
        src = node.input[0]
        bounds = [(op, ctx.input(i)) for op, i in (("Max", 1), ("Min", 2)) if ctx.input(i)]
        for k, (op, bound) in enumerate(bounds):
            dst = node.output[0] if k == len(bounds) - 1 else ctx.temp(f"{src}_lo", x_type)
            ctx.emit(op, [src, bound], [dst], types=[x_type])
            src = dst
        return
    if ctx.opset < 11:
        lo, hi = ctx.attr("min", None), ctx.attr("max", None)
    else:
        lo = _scalar(ctx.const_input(1, "min", None))
        hi = _scalar(ctx.const_input(2, "max", None))
    if x_type.dtype.is_float:
        big = float(np.finfo(x_type.dtype.np_dtype).max)
        lo = -big if lo is None else float(lo)
        hi = big if hi is None else float(hi)
    else:
        info = np.iinfo(x_type.dtype.np_dtype)
        lo = int(info.min) if lo is None else int(lo)
        hi = int(info.max) if hi is None else int(hi)
    ctx.emit("Clip", [node.input[0]], [node.output[0]], UnaryAttrs(alpha=lo, beta=hi))


@lowering("Identity")
def lower_identity(ctx, node):
    ctx.alias_output(node.input[0], node.output[0])


@lowering("Dropout", const_inputs=(1, 2))
def lower_dropout(ctx, node):
    """Inference Dropout is the identity and its mask all True. In training mode only
    ratio=0 is deterministic (and the same); other ratios need random numbers."""
    training = _scalar(ctx.const_input(2, "training_mode", None))
    ratio = _scalar(ctx.const_input(1, "ratio", None))
    if training and (ratio is None or float(ratio) != 0.0):
        raise ctx.error("training_mode=True with ratio != 0 is not supported "
                        "(random dropout; inference only)")
    ctx.alias_output(node.input[0], node.output[0])
    if len(node.output) > 1 and node.output[1]:
        shape = ctx.type(node.input[0]).shape
        ctx.graph.add_constant(node.output[1], np.ones(shape, dtype=np.bool_))


@lowering("Add", "Sub", "Mul", "Div", "Pow", "PRelu")
def lower_binary(ctx, node):
    a, b = node.input[0], node.input[1]
    if ctx.opset < 7 and ctx.attr("broadcast", 0):
        raise ctx.error("legacy broadcast attribute (opset < 7) is not supported")
    ctx.emit(node.op_type, [a, b], [node.output[0]])


@lowering("Min", "Max", "Sum", "Mean")
def lower_variadic(ctx, node):
    """Min/Max/Sum/Mean of N inputs -> a chain of binary ops (Mean: Sum then Div by N)."""
    op = {"Sum": "Add", "Mean": "Add"}.get(node.op_type, node.op_type)
    inputs = [i for i in node.input if i]
    out = node.output[0]
    out_type = ctx.type(out)
    if len(inputs) == 1 and node.op_type != "Mean":
        ctx.alias_output(inputs[0], out)
        return
    acc = inputs[0]
    for k, nxt in enumerate(inputs[1:]):
        last = k == len(inputs) - 2 and node.op_type != "Mean"
        shape = np.broadcast_shapes(ctx.type(acc).shape, ctx.type(nxt).shape)
        dst = out if last else ctx.temp(f"{out}_acc{k}", out_type.with_shape(shape))
        ctx.emit(op, [acc, nxt], [dst], types=[ctx.type(dst)])
        acc = dst
    if node.op_type == "Mean":
        n = ctx.add_constant(f"{out}_count", np.array(len(inputs), dtype=out_type.dtype.np_dtype))
        ctx.emit("Div", [acc, n], [out], types=[out_type])


def binary_output_type(a: TensorType, b: TensorType) -> TensorType:
    return TensorType(a.dtype, tuple(np.broadcast_shapes(a.shape, b.shape)))
