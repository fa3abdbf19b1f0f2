"""Portable C kernels for MaxPool and AveragePool (NCHW, spatial dims padded to 3-D)."""
from __future__ import annotations

import numpy as np

from ..codegen import c_literal
from ..kernels import Kernel, kernel
from .conv import spatial3


def _lowest(dtype) -> str:
    if dtype.is_float:
        return c_literal(-np.inf, dtype)
    return c_literal(np.iinfo(dtype.np_dtype).min, dtype)


def pool_context(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    nsp = len(a.kernel)
    IS = spatial3(x.shape[2:], 1)
    return dict(
        x=x, y=y, N=x.shape[0], C=x.shape[1],
        IS=IS, OS=spatial3(y.shape[2:], 1), K=spatial3(a.kernel, 1),
        S=spatial3(a.strides, 1), D=spatial3(a.dilations, 1),
        PB=spatial3(a.pads[:nsp], 0), PE=spatial3(a.pads[nsp:], 0),
        # element offset of one step along each spatial axis in the Indices output
        IDX=(1, IS[0], IS[0] * IS[1]) if a.storage_order else (IS[1] * IS[2], IS[2], 1),
    )


@kernel("MaxPool")
def max_pool(ctx, node):
    context = pool_context(ctx, node)
    outs = [o for o in node.outputs if o]
    ind = ctx.view(outs[1]) if len(outs) > 1 else None
    dtype = context["x"].dtype
    context.update(ind=ind, lowest=_lowest(dtype), nan=dtype.is_float)
    return Kernel("pool_max.c.j2", context, [node.inputs[0]] + outs)


@kernel("AveragePool")
def average_pool(ctx, node):
    context = pool_context(ctx, node)
    context.update(include_pad=node.attrs.count_include_pad)
    return Kernel("pool_average.c.j2", context, [node.inputs[0], node.outputs[0]])
