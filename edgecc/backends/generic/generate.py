"""Portable C kernels: Expand, Tile, Trilu, OneHot, CumSum, CumProd, ReverseSequence, Col2Im
(see compiler/lowering/generate.py and ir/ops/generate.py for their semantics).

Expand and Tile are strided copies (movement.py's ``strided_copy.c.j2``): Expand reads with
stride 0 along broadcast axes; Tile loops over [r0, d0, r1, d1, ...], repeat axes reading with
stride 0. The others have their own templates, ``generate_*.c.j2``. Integer running sums and
products are computed in uint32_t/uint64_t, so they wrap modulo 2^bits as numpy does, without
signed overflow.
"""
from __future__ import annotations

import numpy as np

from ...ir.ops.generate import col2im_table
from ..kernels import Kernel, broadcast_strides, kernel
from .elementwise import unsigned_ctype
from .movement import copy_block, strided_copy


def _outer_inner(shape, axis: int):
    return int(np.prod(shape[:axis])), int(shape[axis]), int(np.prod(shape[axis + 1:]))


@kernel("Expand")
def expand(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    src = broadcast_strides(x.shape, y.shape)
    block = copy_block("x0", y.shape, 0, src, 0, y.strides,
                       f"y = x0 {list(x.shape)} broadcast to {list(y.shape)}")
    return strided_copy(ctx, node, [block])


@kernel("Tile")
def tile(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    dims, src, dst = [], [], []
    for d, r, xs, ys in zip(x.shape, node.attrs.repeats, x.strides, y.strides):
        dims += [r, d]
        src += [0, xs]
        dst += [d * ys, ys]
    block = copy_block("x0", dims, 0, src, 0, dst,
                       f"y = x0 repeated {list(node.attrs.repeats)} times")
    return strided_copy(ctx, node, [block])


@kernel("Trilu")
def trilu(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    rows, cols = x.shape[-2:]
    return Kernel("generate_trilu.c.j2",
                  dict(x=x, y=y, batch=x.numel // (rows * cols), rows=rows, cols=cols,
                       upper=node.attrs.upper, k=node.attrs.k),
                  [x.name, y.name])


@kernel("OneHot")
def one_hot(ctx, node):
    idx, values, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    a = node.attrs
    outer = int(np.prod(idx.shape[:a.axis]))
    inner = int(np.prod(idx.shape[a.axis:]))
    if idx.dtype.is_float:
        kind, vtype = "float", "double"
    elif idx.dtype.is_signed:
        kind, vtype = "signed", "int64_t"
    else:
        kind, vtype = "unsigned", "uint64_t"
    return Kernel("generate_one_hot.c.j2",
                  dict(idx=idx, values=values, y=y, outer=outer, inner=inner, depth=a.depth,
                       kind=kind, vtype=vtype),
                  [idx.name, values.name, y.name])


@kernel("CumSum", "CumProd")
def cumulative(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    outer, n, inner = _outer_inner(x.shape, a.axis)
    acc = x.ctype if x.dtype.is_float else unsigned_ctype(x.dtype)
    product = node.op == "CumProd"
    step = f"acc = acc {'*' if product else '+'} " + \
        ("x[at]" if x.dtype.is_float else f"({acc})x[at]")
    return Kernel("generate_cumulative.c.j2",
                  dict(x=x, y=y, outer=outer, n=n, inner=inner, acc_type=acc,
                       ident=1 if product else 0, step=step, exclusive=a.exclusive,
                       reverse=a.reverse, op=node.op),
                  [x.name, y.name])


@kernel("ReverseSequence")
def reverse_sequence(ctx, node):
    x, lens, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    a = node.attrs
    steps, batch = x.shape[a.time_axis], x.shape[a.batch_axis]
    inner = int(np.prod(x.shape[2:]))
    if a.time_axis == 0:
        at = lambda t: f"({t} * {batch} + b) * {inner}"  # noqa: E731
    else:
        at = lambda t: f"(b * {steps} + {t}) * {inner}"  # noqa: E731
    return Kernel("generate_reverse_sequence.c.j2",
                  dict(x=x, lens=lens, y=y, steps=steps, batch=batch, inner=inner,
                       dst=at("t"), src=at("s")),
                  [x.name, lens.name, y.name])


@kernel("Col2Im")
def col2im(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    cols = x.shape[2]
    table = col2im_table(node.attrs, cols)
    channels = y.shape[0] * y.shape[1]
    image = int(np.prod(node.attrs.image))
    if x.dtype.is_float:
        add = "y[c * {img} + at] += x[c * {rows} + r]"
    else:
        u = unsigned_ctype(x.dtype)
        add = (f"y[c * {{img}} + at] = ({x.ctype})(({u})y[c * {{img}} + at] + "
               f"({u})x[c * {{rows}} + r])")
    return Kernel("generate_col2im.c.j2",
                  dict(x=x, y=y, channels=channels, image=image, rows=len(table),
                       add=add.format(img=image, rows=len(table))),
                  [x.name, y.name], tables={"at": table})
