"""ONNX lowerings: InstanceNormalization, GroupNormalization, LpNormalization,
MeanVarianceNormalization, RMSNormalization (all to the IR op ``Normalize``), LRN, LpPool and
MaxUnpool.

``Normalize`` reduces over any set of axes and broadcasts scale and bias to x numpy-style, so
each op only chooses a view:

    InstanceNormalization  axes [2, rank), scale/bias (C,) viewed as (C, 1, ..., 1)
    GroupNormalization     x viewed as (N, G, C/G, S), axes (2, 3); scale/bias per channel
                           (opset 21) viewed as (G, C/G, 1) or per group (opset 18) as (G, 1, 1)
    LpNormalization        axes (axis,), mode l1 or l2
    MeanVarianceNorm.      axes attribute (default [0, 2, 3]), eps 1e-9 after the square root
    RMSNormalization       axes [axis, rank), scale broadcast to the normalized shape

The views are Reshape aliases (no code). Computation is in the input's float type (float16
and bfloat16 models reach here widened to float32 by lowering/cast.py): stash_type 1 is
float32 for float32 inputs; a double input stays in double, closer to the exact value than
the float32 stash.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ...ir.ops.normalization import LpPoolAttrs, LRNAttrs, MaxUnpoolAttrs, NormalizeAttrs
from ..registry import lowering
from .conv import explicit_pads
from .shape_ops import emit_reshape

FLOATS = (DType.FLOAT32, DType.FLOAT64)


def _float_input(ctx, name):
    t = ctx.type(name)
    if t.dtype not in FLOATS:
        raise ctx.error(f"{ctx.node.op_type} on {t.dtype.name.lower()} is not supported")
    return t


def _axis(ctx, axis, rank):
    if not -rank <= axis < rank:
        raise ctx.error(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def _view(ctx, name, shape, what):
    """``name`` viewed with ``shape`` (an alias, or a constant), or "" for no input."""
    if not name:
        return ""
    t = ctx.type(name)
    if t.numel != int(np.prod(shape)):
        raise ctx.error(f"{what} of shape {list(t.shape)} does not fit shape {list(shape)}")
    if tuple(t.shape) == tuple(shape):
        return name
    out = ctx.graph.fresh_name(f"{name}_view")
    emit_reshape(ctx, name, out, shape)
    return out


def _broadcastable(ctx, name, x_shape, what):
    """``name`` as an input numpy broadcasting reaches x's shape with, or ""."""
    if not name:
        return ""
    shape = tuple(ctx.type(name).shape)
    while len(shape) > len(x_shape) and shape[0] == 1:
        shape = shape[1:]
    if len(shape) > len(x_shape) or any(
            s not in (1, d) for s, d in zip(reversed(shape), reversed(x_shape))):
        raise ctx.error(f"{what} of shape {list(ctx.type(name).shape)} does not broadcast "
                        f"to {list(x_shape)}")
    return _view(ctx, name, shape, what)


@lowering("InstanceNormalization")
def lower_instance_norm(ctx, node):
    x_t = _float_input(ctx, node.input[0])
    if x_t.rank < 3:
        raise ctx.error(f"input of rank {x_t.rank} has no spatial axes")
    pshape = (x_t.shape[1],) + (1,) * (x_t.rank - 2)
    scale = _view(ctx, ctx.input(1), pshape, "scale")
    bias = _view(ctx, ctx.input(2), pshape, "B")
    attrs = NormalizeAttrs(tuple(range(2, x_t.rank)), "meanvar",
                           float(ctx.attr("epsilon", 1e-5)))
    ctx.emit("Normalize", [node.input[0], scale, bias], [node.output[0]], attrs)


@lowering("GroupNormalization")
def lower_group_norm(ctx, node):
    x_t = _float_input(ctx, node.input[0])
    if x_t.rank < 2:
        raise ctx.error(f"input of rank {x_t.rank} has no channel axis")
    n, c = x_t.shape[:2]
    groups = int(ctx.attr("num_groups", 0))
    if groups <= 0 or c % groups:
        raise ctx.error(f"num_groups {groups} does not divide the {c} channels")
    spatial = int(np.prod(x_t.shape[2:]))
    per = c // groups
    params = []
    for i, what in ((1, "scale"), (2, "bias")):
        numel = ctx.type(ctx.input(i)).numel if ctx.input(i) else c
        if numel == c:
            params.append(_view(ctx, ctx.input(i), (groups, per, 1), what))
        elif numel == groups:  # opset 18: one value per group
            params.append(_view(ctx, ctx.input(i), (groups, 1, 1), what))
        else:
            raise ctx.error(f"{what} has {numel} values: not one per channel ({c}) "
                            f"or per group ({groups})")
    shape4 = (n, groups, per, spatial)
    xv = ctx.temp(f"{node.input[0]}_groups", x_t.with_shape(shape4))
    emit_reshape(ctx, node.input[0], xv, shape4)
    yv = ctx.temp(f"{node.output[0]}_groups", x_t.with_shape(shape4))
    ctx.emit("Normalize", [xv] + params, [yv],
             NormalizeAttrs((2, 3), "meanvar", float(ctx.attr("epsilon", 1e-5))))
    emit_reshape(ctx, yv, node.output[0], x_t.shape)


@lowering("LpNormalization")
def lower_lp_norm(ctx, node):
    x_t = _float_input(ctx, node.input[0])
    p = int(ctx.attr("p", 2))
    if p not in (1, 2):
        raise ctx.error(f"p {p} is not supported (1 or 2)")
    axis = _axis(ctx, int(ctx.attr("axis", -1)), x_t.rank)
    ctx.emit("Normalize", [node.input[0]], [node.output[0]],
             NormalizeAttrs((axis,), f"l{p}"))


@lowering("MeanVarianceNormalization")
def lower_mvn(ctx, node):
    x_t = _float_input(ctx, node.input[0])
    axes = sorted({_axis(ctx, int(a), x_t.rank) for a in ctx.attr("axes", [0, 2, 3])})
    if not axes:
        raise ctx.error("axes is empty")
    ctx.emit("Normalize", [node.input[0]], [node.output[0]],
             NormalizeAttrs(tuple(axes), "mvn", 1e-9))


@lowering("RMSNormalization")
def lower_rms_norm(ctx, node):
    x_t = _float_input(ctx, node.input[0])
    axis = _axis(ctx, int(ctx.attr("axis", -1)), x_t.rank)
    scale = _broadcastable(ctx, ctx.input(1), x_t.shape, "scale")
    ctx.emit("Normalize", [node.input[0], scale], [node.output[0]],
             NormalizeAttrs(tuple(range(axis, x_t.rank)), "rms",
                            float(ctx.attr("epsilon", 1e-5))))


@lowering("LRN")
def lower_lrn(ctx, node):
    x_t = _float_input(ctx, node.input[0])
    if x_t.rank < 2:
        raise ctx.error(f"input of rank {x_t.rank} has no channel axis")
    size = int(ctx.attr("size", 0))
    if size < 1:
        raise ctx.error(f"size {size} must be positive")
    attrs = LRNAttrs(size, float(ctx.attr("alpha", 1e-4)), float(ctx.attr("beta", 0.75)),
                     float(ctx.attr("bias", 1.0)))
    ctx.emit("LRN", [node.input[0]], [node.output[0]], attrs)


@lowering("LpPool")
def lower_lp_pool(ctx, node):
    x_t = _float_input(ctx, node.input[0])
    y_t = ctx.type(node.output[0])
    nsp = x_t.rank - 2
    if nsp < 1 or nsp > 3:
        raise ctx.error(f"LpPool with {nsp} spatial dims is not supported (1 to 3)")
    if ctx.attr("kernel_shape") is None:
        raise ctx.error("kernel_shape is required")
    kernel = tuple(int(k) for k in ctx.attr("kernel_shape"))
    strides = tuple(int(s) for s in ctx.attr("strides", [1] * nsp))
    dilations = tuple(int(d) for d in ctx.attr("dilations", [1] * nsp))
    p = int(ctx.attr("p", 2))
    if p < 1:
        raise ctx.error(f"p {p} must be positive")
    pads = explicit_pads(ctx, x_t.shape[2:], y_t.shape[2:], kernel, strides, dilations)
    ctx.emit("LpPool", [node.input[0]], [node.output[0]],
             LpPoolAttrs(kernel, strides, pads, dilations, p=p))


@lowering("MaxUnpool", const_inputs=(2,))
def lower_max_unpool(ctx, node):
    x_t = _float_input(ctx, node.input[0])
    nsp = x_t.rank - 2
    if nsp < 1 or nsp > 3:
        raise ctx.error(f"MaxUnpool with {nsp} spatial dims is not supported (1 to 3)")
    if ctx.type(node.input[1]).dtype != DType.INT64:
        raise ctx.error("indices must be int64")
    if ctx.type(node.input[1]).shape != x_t.shape:
        raise ctx.error("indices and X have different shapes")
    if ctx.attr("kernel_shape") is None:
        raise ctx.error("kernel_shape is required")
    kernel = [int(k) for k in ctx.attr("kernel_shape")]
    strides = [int(s) for s in ctx.attr("strides", [1] * nsp)]
    pads = [int(p) for p in ctx.attr("pads", [0] * (2 * nsp))]
    inferred = tuple(x_t.shape[:2]) + tuple(
        (x_t.shape[2 + i] - 1) * strides[i] - pads[i] - pads[nsp + i] + kernel[i]
        for i in range(nsp))
    if any(d < 1 for d in inferred):
        raise ctx.error(f"unpooled shape {list(inferred)} is empty")
    out = inferred
    if ctx.input(2):
        out = tuple(int(d) for d in ctx.const_input(2, "output_shape").reshape(-1))
        if len(out) != len(inferred) or any(o < i for o, i in zip(out, inferred)):
            raise ctx.error(f"output_shape {list(out)} is smaller than the unpooled shape "
                            f"{list(inferred)}")
    ctx.emit("MaxUnpool", [node.input[0], node.input[1]], [node.output[0]],
             MaxUnpoolAttrs(inferred), types=[x_t.with_shape(out)])
