"""Portable C kernels for the int8 ops: QConv, QGemm (fully connected), QLut.

Per-channel requantization constants (M0, shift) are computed here at compile time from the
tensor types' scales (edgecc/ir/quant.py); the C does integer arithmetic only.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ...ir.ops import op_info
from ...ir.quant import activation_bounds, quant_range, quantize_multipliers  # noqa: F401
from ..kernels import Kernel, kernel
from .conv import conv_context

HELPERS = ("int8_helpers.c.j2",)


def requant_tables(x_t, w_t, y_t, channels):
    s_w = np.broadcast_to(np.asarray(w_t.quant.scale, dtype=np.float64), (channels,))
    real = x_t.quant.scale[0] * s_w / y_t.quant.scale[0]
    mult, shift = quantize_multipliers(real)
    return {"multiplier": mult, "shift": shift}


@kernel("QConv")
def qconv(ctx, node):
    # the float conv context would build a C expression of the activation (and fail on a
    # Clip with an infinite bound); here the activation is the integer clamp below
    plain = node.replace(attrs=dataclasses.replace(node.attrs, activation=None))
    context, args = conv_context(ctx, plain)
    g = ctx.graph
    x_t, w_t, y_t = (g.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    act_min, act_max = activation_bounds(node.attrs.activation, y_t)
    context.update(in_offset=-x_t.quant.zero_point[0], out_offset=y_t.quant.zero_point[0],
                   act_min=act_min, act_max=act_max, y_packed=False)
    return Kernel("qconv.c.j2", context, args,
                  tables=requant_tables(x_t, w_t, y_t, context["M"]), needs=HELPERS,
                  inplace=context["inplace"])


@kernel("QConvPack")
def qconv_pack(ctx, node):
    """QConv writing k-bit codes as bit planes, NHWC (ir/ops/lowbit_ops.py)."""
    context, args = conv_context(ctx, node)
    g = ctx.graph
    x_t, w_t, y_t = (g.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    n, oh, ow, m = y_t.shape
    context.update(in_offset=-x_t.quant.zero_point[0], out_offset=0, act_min=node.attrs.lo,
                   act_max=node.attrs.hi, y_packed=True, YB=y_t.planes, CBY=(m + 7) // 8,
                   M=m, OS=(1, oh, ow))
    return Kernel("qconv.c.j2", context, args,
                  tables=requant_tables(x_t, w_t, y_t, m), needs=HELPERS)


@kernel("QGemm")
def qgemm(ctx, node):
    g = ctx.graph
    x, w, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    b = ctx.view(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    x_t, w_t, y_t = (g.types[n] for n in (x.name, w.name, y.name))
    act_min, act_max = activation_bounds(node.attrs.activation, y_t)
    M, N = y.shape
    K = w.shape[1]
    return Kernel("qgemm.c.j2", dict(
        x=x, w=w, b=b, y=y, M=M, N=N, K=K, in_offset=-x_t.quant.zero_point[0],
        out_offset=y_t.quant.zero_point[0], act_min=act_min, act_max=act_max),
        [x.name, w.name] + ([b.name] if b else []) + [y.name],
        tables=requant_tables(x_t, w_t, y_t, N), needs=HELPERS)


def lut_table(attrs, x_t, y_t) -> np.ndarray:
    """table[q - qmin] = Q_out(f(DQ_in(q))) for every input code q, in float32."""
    qmin, qmax = quant_range(x_t.dtype.np_dtype)
    codes = np.arange(qmin, qmax + 1, dtype=np.int32)
    real = (codes - x_t.quant.zero_point[0]).astype(np.float32) * np.float32(x_t.quant.scale[0])
    with np.errstate(all="ignore"):
        fn = (lambda x, *_: x) if attrs.kind == "Requantize" else op_info(attrs.kind).pointwise
        out = fn(real, attrs.alpha, attrs.beta, attrs.approximate).astype(np.float32)
        q = np.rint(out / np.float32(y_t.quant.scale[0]))
    omin, omax = quant_range(y_t.dtype.np_dtype)
    q = np.nan_to_num(q, nan=0.0, posinf=omax, neginf=omin) + y_t.quant.zero_point[0]
    return np.clip(q, omin, omax).astype(y_t.dtype.np_dtype)


@kernel("QLut")
def qlut(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    g = ctx.graph
    table = lut_table(node.attrs, g.types[x.name], g.types[y.name])
    qmin = quant_range(x.dtype.np_dtype)[0]
    return Kernel("qlut.c.j2", dict(x=x, y=y, qmin=qmin), [x.name, y.name],
                  tables={"table": table})
