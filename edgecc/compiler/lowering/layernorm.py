"""LayerNormalization: normalize over the axes [axis, rank), then scale and shift.

    mean = sum(x) / n;  inv_std = 1 / sqrt(sum((x - mean)^2) / n + epsilon)
    y = (x - mean) * inv_std * scale + bias

IR node: inputs (X, Scale, B or ""), outputs (Y, Mean or "", InvStdDev or ""). Scale and B
either cover the normalized shape or are a single value; a constant of another broadcastable
shape is expanded here, so the kernel indexes them by position in the normalized block.
"""
from __future__ import annotations

import numpy as np

from ...ir.ops.layernorm import LayerNormAttrs
from ..registry import lowering


def _param(ctx, i, norm_shape, what):
    """Input i (Scale or B) as a name the kernel can index: full normalized size or one value."""
    name = ctx.input(i)
    if not name:
        return ""
    t = ctx.type(name)
    n = int(np.prod(norm_shape))
    if t.numel == 1 or (t.numel == n and tuple(d for d in t.shape if d != 1)
                        == tuple(d for d in norm_shape if d != 1)):
        return name
    value = ctx.const(name)
    try:
        full = None if value is None else np.broadcast_to(value, norm_shape)
    except ValueError:
        full = None
    if full is None:
        raise ctx.error(f"{what} of shape {t.shape} must match the normalized shape "
                        f"{tuple(norm_shape)} or be a single value (or be a constant)")
    return ctx.add_constant(f"{name}_expanded", np.ascontiguousarray(full))


@lowering("LayerNormalization")
def lower_layernorm(ctx, node):
    x_t = ctx.type(node.input[0])
    if not x_t.dtype.is_float:
        raise ctx.error(f"LayerNormalization on {x_t.dtype.name.lower()} is not supported")
    rank = x_t.rank
    axis = int(ctx.attr("axis", -1))
    if not -rank <= axis < rank:
        raise ctx.error(f"axis {axis} is out of range for rank {rank}")
    if axis < 0:
        axis += rank
    norm_shape = x_t.shape[axis:]
    scale = _param(ctx, 1, norm_shape, "Scale")
    bias = _param(ctx, 2, norm_shape, "B")
    outputs = [node.output[k] if k < len(node.output) else "" for k in range(3)]
    ctx.emit("LayerNormalization", [node.input[0], scale, bias], outputs,
             LayerNormAttrs(axis, float(ctx.attr("epsilon", 1e-5))))
