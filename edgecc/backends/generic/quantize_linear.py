"""Portable C kernels for QuantizeLinear (float -> int, round half to even, saturate) and
DequantizeLinear (int -> float), per tensor or per axis."""
from __future__ import annotations

import numpy as np

from ...ir.quant import quant_range
from ..kernels import Kernel, kernel


def _axis_geometry(shape, quant):
    if quant.axis is None:
        return 1, 1
    inner = int(np.prod(shape[quant.axis + 1:])) if quant.axis + 1 < len(shape) else 1
    return len(quant.scale), inner


@kernel("QuantizeLinear", "DequantizeLinear")
def quantize_linear(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    q = node.attrs.quant
    int_view = y if node.op == "QuantizeLinear" else x
    channels, inner = _axis_geometry(x.shape, q)
    qmin, qmax = quant_range(int_view.dtype.np_dtype)
    return Kernel("quantize_linear.c.j2", dict(
        x=x, y=y, quantize=node.op == "QuantizeLinear", channels=channels, inner=inner,
        qmin=qmin, qmax=qmax), [x.name, y.name],
        tables={"scale": np.asarray(q.scale, dtype=np.float32),
                "zero_point": np.asarray(q.zero_point, dtype=np.int32)})
