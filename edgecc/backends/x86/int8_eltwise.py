"""int8 elementwise adds, NHWC max pools, means over H and W and the float input's quantization
on AVX2, generated per layer.

QAdd (two same-shape int8 tensors, any layout; TFLite's Add, ir/quant_ref.py):
Before:  y = clamp(RQ(RQ((a - za) 2^20, Ma) + RQ((b - zb) 2^20, Mb), My) + zy)
After:   the same, 8 lanes per step (|a - za| 2^20 < 2^28 and each rescaled input stays below
         that, so no int32 lane overflows); RQ is int8_conv.py's exact vector requantization;
         the last n % 8 elements go through copies. In place (y over a or b) is fine: each
         step reads its 8 elements before it writes them.

MaxPoolNHWC (int8, no dilation): per output pixel the maximum of its window's rows, 32
channels per vpmaxsb, the rest one by one; taps in the padding are skipped and the maximum
starts at -128, as the portable kernel does. Exact (a maximum).

QReduceMean over axes (1, 2) of an NHWC int8 tensor (the global average pools the layout pass
turns into it): per 8 channels acc = sum x - HW zx in int32 lanes (|acc| <= 255 HW < 2^31:
HW < 2^23 required), then RQ by (M0, shift) of s_x / (s_y HW), zy, clamp to int8 (the
portable kernel's sum of (x - zx), the same integer).

QuantizeLinear (float32 -> int8, per tensor): 8 lanes per step with the portable kernel's
float32 operations in the same order (``quantize``); the tail runs its scalar form.
"""
from __future__ import annotations

import numpy as np

from ...ir import quant_ref as R
from ...passes import layout_nhwc
from ..generic.int8 import activation_bounds
from ..kernels import Kernel, kernel
from .int8_conv import COMMON
from .layout import accepts

MAX_PIXELS = 1 << 23


def _st(t):
    return float(t.quant.scale[0]), int(t.quant.zero_point[0])


def _rq(m0: int, shift: int) -> dict:
    """A scalar requantization's template values (int8_conv.requant_records' fields)."""
    left, right = max(shift, 0), max(-shift, 0)
    mask = (1 << right) - 1
    return dict(m0=int(m0), left=left, right=right, mask=mask, half=mask >> 1)


def _int8(*types) -> bool:
    return all(t.dtype.name == "INT8" and t.quant is not None and len(t.quant.scale) == 1
               for t in types)


@kernel("QAdd")
def qadd(ctx, node):
    g = ctx.graph
    ta, tb, ty = (g.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if ta.shape != tb.shape or ta.shape != ty.shape or not _int8(ta, tb, ty):
        return None
    (s_a, za), (s_b, zb), (s_y, zy) = _st(ta), _st(tb), _st(ty)
    pairs = R.add_multipliers(s_a, s_b, s_y)
    if any(abs(sh) > 31 for _, sh in pairs):
        return None
    qa, qb, qy = (_rq(m, sh) for m, sh in pairs)
    act_min, act_max = activation_bounds(node.attrs.activation, ty)
    a, b, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    return Kernel("x86_qadd.c.j2", dict(N=y.numel, za=za, zb=zb, zy=zy, qa=qa, qb=qb, qy=qy,
                                        LEFT=R.ADD_LEFT_SHIFT, act_min=act_min,
                                        act_max=act_max),
                  [a.name, b.name, y.name], needs=COMMON)


def _pool_ok(graph, node) -> bool:
    x_t = graph.types[node.inputs[0]]
    a = node.attrs
    return (x_t.rank == 4 and x_t.dtype.name == "INT8" and len(a.kernel) == 2
            and all(d == 1 for d in a.dilations)
            and len([o for o in node.outputs if o]) == 1)


@accepts("MaxPool")
def takes_max_pool(graph, node) -> bool:
    return layout_nhwc.convertible(graph, node) and _pool_ok(graph, node)


@kernel("MaxPoolNHWC")
def max_pool_nhwc(ctx, node):
    if not _pool_ok(ctx.graph, node):
        return None
    a = node.attrs
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    return Kernel("x86_qmaxpool.c.j2", dict(
        P=n * oh * ow, OH=oh, OW=ow, H=h, W=w, C=c, KH=a.kernel[0], KW=a.kernel[1],
        SH=a.strides[0], SW=a.strides[1], PT=a.pads[0], PL=a.pads[1]),
        [x.name, y.name], needs=COMMON)


@kernel("QReduceMean")
def qmean_hw(ctx, node):
    g = ctx.graph
    x_t, y_t = g.types[node.inputs[0]], g.types[node.outputs[0]]
    if (tuple(node.attrs.axes) != (1, 2) or not node.attrs.keepdims or x_t.rank != 4
            or not _int8(x_t, y_t)):
        return None
    n, h, w, c = x_t.shape
    if not 0 < h * w < MAX_PIXELS:
        return None
    (s_x, zx), (s_y, zy) = _st(x_t), _st(y_t)
    m0, shift = R.mean_multiplier(s_x, s_y, h * w)
    if abs(shift) > 31:
        return None
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return Kernel("x86_qmean.c.j2", dict(N=n, HW=h * w, C=c, zx=zx, zy=zy, **_rq(m0, shift)),
                  [x.name, y.name], needs=COMMON)


@kernel("QuantizeLinear")
def quantize(ctx, node):
    """float32 -> int8 per tensor: vdivps by the scale (the portable kernel's float32 division),
    vroundps to nearest even (nearbyintf in the default rounding mode), + zero point in float32,
    NaN -> zero point, clamp to [-128, 127] in float, convert (exact: integers)."""
    g = ctx.graph
    x_t, y_t, q = g.types[node.inputs[0]], g.types[node.outputs[0]], node.attrs.quant
    if x_t.dtype.name != "FLOAT32" or y_t.dtype.name != "INT8" or q.axis is not None:
        return None
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    scale = float(np.float32(q.scale[0]))
    return Kernel("x86_quantize.c.j2", dict(N=y.numel, scale=scale.hex() + "f",
                                            zp=int(q.zero_point[0])),
                  [x.name, y.name], needs=COMMON)
