"""Portable C kernels for Softmax and LogSoftmax (see compiler/lowering/softmax.py).

The input is viewed as [outer, n, inner]: n elements normalized together, inner apart.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ..kernels import Kernel, kernel


@kernel("Softmax", "LogSoftmax")
def softmax(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    inner = int(np.prod(x.shape[a.end_axis:]))
    suffix = "f" if x.dtype == DType.FLOAT32 else ""
    return Kernel("softmax.c.j2",
                  dict(x=x, y=y, log=node.op == "LogSoftmax",
                       outer=int(np.prod(x.shape[:a.axis])),
                       n=int(np.prod(x.shape[a.axis:a.end_axis])),
                       inner=inner, k="k" if inner == 1 else f"k * {inner}",
                       exp="exp" + suffix, logf="log" + suffix),
                  [x.name, y.name])
