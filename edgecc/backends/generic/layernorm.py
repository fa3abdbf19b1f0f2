"""Portable C kernel for LayerNormalization (see compiler/lowering/layernorm.py)."""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ..codegen import c_literal
from ..kernels import Kernel, kernel


@kernel("LayerNormalization")
def layer_norm(ctx, node):
    x = ctx.view(node.inputs[0])
    scale, bias = (ctx.view(n) if n else None for n in node.inputs[1:3])
    y, mean, inv_std = (ctx.view(n) if n else None for n in node.outputs[:3])
    n = int(np.prod(x.shape[node.attrs.axis:]))
    args = [x.name, scale.name] + ([bias.name] if bias else []) + [y.name]
    args += [v.name for v in (mean, inv_std) if v]
    return Kernel("layernorm.c.j2",
                  dict(x=x, scale=scale, bias=bias, y=y, mean=mean, inv_std=inv_std,
                       outer=x.numel // n if n else 0, n=n,
                       eps=c_literal(node.attrs.epsilon, x.dtype),
                       sqrt="sqrtf" if x.dtype == DType.FLOAT32 else "sqrt",
                       s_idx="i" if scale.numel > 1 else "0",
                       b_idx="i" if bias and bias.numel > 1 else "0"),
                  args)
