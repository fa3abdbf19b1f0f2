"""Portable C kernel for a BatchNormalization left unfolded: a per-channel affine map."""
from __future__ import annotations

import numpy as np

from ...ir.ops.batchnorm import batchnorm_affine
from ..kernels import Kernel, kernel


@kernel("BatchNormalization")
def batchnorm(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    scale, bias, mean, var = (ctx.const(n) for n in node.inputs[1:5])
    a, b = batchnorm_affine(scale, bias, mean, var, node.attrs.epsilon)
    channels = x.shape[1] if x.rank > 1 else 1
    inner = int(np.prod(x.shape[2:])) if x.rank > 2 else 1
    return Kernel("channel_affine.c.j2",
                  dict(x=x, y=y, outer=x.shape[0] if x.rank else 1, channels=channels, inner=inner),
                  [x.name, y.name],
                  tables={"scale": a.astype(x.dtype.np_dtype), "shift": b.astype(x.dtype.np_dtype)})
