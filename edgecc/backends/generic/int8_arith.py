"""Portable C kernels for QAdd, QMul, QAveragePool, QReduceMean, QSoftmax, QMatMul.

The constants (multipliers, shifts, tables) come from edgecc/ir/quant_ref.py, whose numpy
functions model each kernel's integer arithmetic exactly; the C does integer arithmetic only.

QAveragePool divisor: the window count varies at the borders (padding, ceil mode), so one
(M0, shift) = quantize(s_in / (s_out * count)) is precomputed per count. When every window
has the same count (no padding effect, e.g. GlobalAveragePool) they are literals; otherwise
they are tables indexed by the count (prod(kernel) + 1 entries). The rounding is the usual
requantization (SRDHM then RDBP), with equal or different input and output scales alike.
"""
from __future__ import annotations

import numpy as np

from ...ir import quant_ref as R
from ...ir.quant import quant_range
from ..kernels import Kernel, broadcast_strides, collapse_loops, kernel
from .int8 import HELPERS, activation_bounds
from .pool import pool_context
from .reduce import reduce_geometry


def _st(t):
    return float(t.quant.scale[0]), int(t.quant.zero_point[0])


def _offset(names, strides) -> str:
    """C expression sum(name * stride) without the "* 1"s and the zero strides."""
    terms = [n if s == 1 else f"{n} * {s}" for n, s in zip(names, strides) if s]
    return " + ".join(terms) or "0"


def _types(ctx, node):
    g = ctx.graph
    return [g.types[n] for n in list(node.inputs) + list(node.outputs) if n]


@kernel("QAdd", "QMul")
def qbinary(ctx, node):
    a, b, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    ta, tb, ty = _types(ctx, node)
    (s_a, za), (s_b, zb), (s_y, zy) = _st(ta), _st(tb), _st(ty)
    dims, (sa, sb, sy) = collapse_loops(y.shape, broadcast_strides(a.shape, y.shape),
                                        broadcast_strides(b.shape, y.shape), y.strides)
    act_min, act_max = activation_bounds(node.attrs.activation, ty)
    names = [f"i{k}" for k in range(len(dims))]
    context = dict(a=a, b=b, y=y, dims=dims, ia=_offset(names, sa), ib=_offset(names, sb),
                   iy=_offset(names, sy), za=za, zb=zb, zy=zy, act_min=act_min,
                   act_max=act_max, add=node.op == "QAdd")
    if node.op == "QAdd":
        (ma, sha), (mb, shb), (my, shy) = R.add_multipliers(s_a, s_b, s_y)
        context.update(left=1 << R.ADD_LEFT_SHIFT, ma=ma, sha=sha, mb=mb, shb=shb)
    else:
        my, shy = R.product_multiplier(s_a, s_b, s_y)
    context.update(my=my, shy=shy)
    return Kernel("qbinary.c.j2", context, [a.name, b.name, y.name], needs=HELPERS)


@kernel("QAveragePool")
def qaverage_pool(ctx, node):
    context = pool_context(ctx, node)
    tx, ty = _types(ctx, node)
    (s_x, zx), (s_y, zy) = _st(tx), _st(ty)
    x, y = context["x"], context["y"]
    _, counts = R.average_pool_geometry(x.shape[2:], y.shape[2:], node.attrs)
    distinct = sorted({int(c) for c in np.ravel(counts)})
    tables = {}
    if len(distinct) == 1:
        m0, shift = R.mean_multiplier(s_x, s_y, distinct[0])
    else:
        size = int(np.prod(node.attrs.kernel)) + 1
        pairs = [R.mean_multiplier(s_x, s_y, c) for c in range(size)]
        tables = {"multiplier": np.array([p[0] for p in pairs], dtype=np.int32),
                  "shift": np.array([p[1] for p in pairs], dtype=np.int32)}
        m0 = shift = None
    qmin, qmax = quant_range(ty.dtype.np_dtype)
    context.update(include_pad=node.attrs.count_include_pad, per_count=bool(tables),
                   m0=m0, shift=shift, zx=zx, zy=zy, qmin=qmin, qmax=qmax)
    return Kernel("qpool_average.c.j2", context, [x.name, y.name], tables=tables, needs=HELPERS)


@kernel("QReduceMean")
def qreduce_mean(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    tx, ty = _types(ctx, node)
    (s_x, zx), (s_y, zy) = _st(tx), _st(ty)
    geometry, count = reduce_geometry(x, node.attrs.axes)
    m0, shift = R.mean_multiplier(s_x, s_y, count)
    qmin, qmax = quant_range(ty.dtype.np_dtype)
    return Kernel("qreduce_mean.c.j2", dict(
        x=x, y=y, zx=zx, zy=zy, m0=m0, shift=shift, qmin=qmin, qmax=qmax, **geometry),
        [x.name, y.name], needs=HELPERS)


@kernel("QSoftmax")
def qsoftmax(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    tx, ty = _types(ctx, node)
    (s_x, _), (s_y, zy) = _st(tx), _st(ty)
    a = node.attrs
    n = int(np.prod(x.shape[a.axis:a.end_axis]))
    g, f = R.softmax_output_multiplier(s_y)
    qmax = quant_range(ty.dtype.np_dtype)[1]
    return Kernel("qsoftmax.c.j2", dict(
        x=x, y=y, outer=int(np.prod(x.shape[:a.axis])), n=n,
        inner=int(np.prod(x.shape[a.end_axis:])),
        sum_t="uint32_t" if n < 65536 else "uint64_t",
        numerator=g << 32, rounding=1 << (31 + f), shift=32 + f, zy=zy, limit=qmax - zy,
        qmax=qmax), [x.name, y.name], tables={"exp": R.softmax_exp_table(s_x)})


@kernel("QMatMul")
def qmatmul(ctx, node):
    a, b, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    ta, tb, ty = _types(ctx, node)
    (s_a, za), (s_b, zb), (s_y, zy) = _st(ta), _st(tb), _st(ty)
    a_shape = (1,) + a.shape if a.rank == 1 else a.shape
    b_shape = b.shape + (1,) if b.rank == 1 else b.shape
    M, K, N = a_shape[-2], a_shape[-1], b_shape[-1]
    batch = tuple(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
    a_bs = tuple(s * M * K for s in broadcast_strides(a_shape[:-2], batch))
    b_bs = tuple(s * K * N for s in broadcast_strides(b_shape[:-2], batch))
    y_bs = tuple(s * M * N for s in broadcast_strides(batch, batch))
    dims, (sa_b, sb_b, sy_b) = (collapse_loops(batch, a_bs, b_bs, y_bs) if batch
                                else ([], ([], [], [])))
    m0, shift = R.product_multiplier(s_a, s_b, s_y)
    act_min, act_max = activation_bounds(node.attrs.activation, ty)
    return Kernel("qmatmul.c.j2", dict(
        a=a, b=b, y=y, batch_dims=dims, sa_b=sa_b, sb_b=sb_b, sy_b=sy_b, M=M, N=N, K=K,
        za=za, zb=zb, zy=zy, m0=m0, shift=shift, act_min=act_min, act_max=act_max),
        [a.name, b.name, y.name], needs=HELPERS)
