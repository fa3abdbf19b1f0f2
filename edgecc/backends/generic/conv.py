"""Portable C kernels for Conv and ConvTranspose (NCHW, spatial dims padded to 3-D).

A depthwise convolution the memory plan runs in place (MemoryPlan.inplace_nodes) gets one
pointer to the shared buffer and computes each output plane into its scratch before copying
it over the input (exact: compiler/lowering/conv.py, depthwise_inplace_scratch)."""
from __future__ import annotations

from ..kernels import Kernel, kernel
from .elementwise import activation_expr


def spatial3(values, fill):
    """Left-pad a per-spatial-axis tuple to 3 axes (D, H, W)."""
    values = tuple(values)
    return (fill,) * (3 - len(values)) + values


def conv_context(ctx, node):
    x, w, y = ctx.view(node.inputs[0]), ctx.view(node.inputs[1]), ctx.view(node.outputs[0])
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else ""
    a = node.attrs
    nsp = len(a.kernel)
    act = a.activation
    inplace = ctx.inplace(node)
    expr = (activation_expr(act.kind, "acc", x.dtype, act.alpha, act.beta)
            if act else "acc")
    return dict(
        x=x, w=w, y=y, b=ctx.view(bias) if bias else None,
        N=x.shape[0], C=x.shape[1], M=y.shape[1], G=a.group,
        IS=spatial3(x.shape[2:], 1), OS=spatial3(y.shape[2:], 1), K=spatial3(a.kernel, 1),
        S=spatial3(a.strides, 1), D=spatial3(a.dilations, 1),
        P=spatial3(a.pads[:nsp], 0), act=expr,
        inplace=inplace, scratch=ctx.scratch(node) if inplace else "",
    ), [x.name, w.name] + ([bias] if bias else []) + ([] if inplace else [y.name])


@kernel("Conv")
def conv(ctx, node):
    context, args = conv_context(ctx, node)
    return Kernel("conv.c.j2", context, args, inplace=context["inplace"])


@kernel("ConvTranspose")
def conv_transpose(ctx, node):
    context, args = conv_context(ctx, node)
    return Kernel("conv_transpose.c.j2", context, args)
