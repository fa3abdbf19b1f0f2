"""Portable C kernels of the low-bit ops (ir/ops/lowbit_ops.py): PackBits, UnpackBits and
QConvBits on bit planes (edgecc/ir/lowbit.py): AND + popcount per pair of planes, or XOR +
popcount for binary operands, 32 bits at a time; requantization as the int8 kernels."""
from __future__ import annotations

from ...ir import DType
from ...ir.ops.lowbit_ops import code
from ..codegen import c_literal
from ..kernels import Kernel, kernel
from .int8 import HELPERS, requant_tables


def planes_context(ctx, packed: str, other: str):
    """Geometry shared by PackBits and UnpackBits: the int8 (or float) NCHW side and the
    packed side."""
    t, o = ctx.graph.types[packed], ctx.graph.types[other]
    c = code(t)
    n, h, w, ch = t.shape
    is_float = o.dtype == DType.FLOAT32
    return dict(N=n, HW=h * w, C=ch, B=c.bits, CB=(ch + 7) // 8, binary=c.binary,
                coef=c.coefficients(), zero_point=0 if is_float else o.quant.zero_point[0],
                from_float=is_float, to_float=is_float,
                scale=c_literal(float(t.quant.scale[0]), DType.FLOAT32))


@kernel("PackBits")
def pack_bits(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    return Kernel("pack_bits.c.j2", dict(planes_context(ctx, y, x), x=ctx.view(x),
                                         y=ctx.view(y)), [x, y])


@kernel("UnpackBits")
def unpack_bits(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    return Kernel("unpack_bits.c.j2", dict(planes_context(ctx, x, y), x=ctx.view(x),
                                           y=ctx.view(y)), [x, y])


def conv_bits_context(ctx, node):
    """The template context of a QConvBits node (also the SIMD backends')."""
    g = ctx.graph
    xn, wn, yn = node.inputs[0], node.inputs[1], node.outputs[0]
    bn = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else ""
    x_t, w_t, y_t = g.types[xn], g.types[wn], g.types[yn]
    xc, wc = code(x_t), code(w_t)
    a = node.attrs
    n, h, w, c = x_t.shape
    m = w_t.shape[0]
    packed_out = y_t.dtype.packed
    oh, ow = (y_t.shape[1:3] if packed_out else y_t.shape[2:4])
    context = dict(
        x=ctx.view(xn), w=ctx.view(wn), y=ctx.view(yn), b=ctx.view(bn) if bn else None,
        N=n, H=h, W=w, C=c, M=m, OH=oh, OW=ow, KH=a.kernel[0], KW=a.kernel[1],
        S=a.strides, D=a.dilations, P=a.pads[:2], CB=(c + 7) // 8,
        XB=xc.bits, WB=wc.bits, binary=xc.binary, w_binary=wc.binary and not xc.binary,
        coef=[[ci * cj for cj in wc.coefficients()] for ci in xc.coefficients()],
        y_packed=packed_out, YB=code(y_t).bits if packed_out else 0, CBY=(m + 7) // 8,
        y_binary=packed_out and code(y_t).binary,
        out_offset=0 if packed_out else y_t.quant.zero_point[0], lo=a.lo, hi=a.hi)
    tables = {} if context["y_binary"] else requant_tables(x_t, w_t, y_t, m)
    return context, [xn, wn] + ([bn] if bn else []) + [yn], tables


@kernel("QConvBits")
def qconv_bits(ctx, node):
    context, args, tables = conv_bits_context(ctx, node)
    popcount = ("lowbit_popcount.c.j2",
                "lowbit_xor.c.j2" if context["binary"] else "lowbit_and.c.j2")
    if context["y_binary"]:  # a sign: no requantization
        return Kernel("qconv_bits.c.j2", context, args, needs=popcount)
    return Kernel("qconv_bits.c.j2", context, args, tables=tables, needs=HELPERS + popcount)
