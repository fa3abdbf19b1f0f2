"""The float input's quantization for Cortex-M (QuantizeLinear float32 -> int8, per tensor),
generated per layer: y = saturate(round_half_even(x / scale) + zero_point), NaN -> zero_point,
as the portable kernel computes it (backends/generic/quantize_linear.py), but on the FPU:
one VDIV by the scale (a constant: the same float32 division), one VCVTR (round to nearest,
ties to even: the FPSCR's default mode; it saturates and converts NaN to 0) and an SSAT to
[-512, 511], which changes no result (|zero_point| < 128) and keeps the sum in range.
Cores without a single-precision FPU (and the host build) use nearbyintf."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..kernels import Kernel


def plan(graph, node) -> Optional[dict]:
    if node.op != "QuantizeLinear":
        return None
    x_t, y_t, q = graph.types[node.inputs[0]], graph.types[node.outputs[0]], node.attrs.quant
    if x_t.dtype.name != "FLOAT32" or y_t.dtype.name != "INT8" or q.axis is not None:
        return None
    scale = float(np.float32(q.scale[0]))
    return dict(scale=scale.hex() + "f", zp=int(q.zero_point[0]))


def emit(ctx, node):
    found = plan(ctx.graph, node)
    if found is None:
        return None
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return Kernel("cm_quantize.c.j2", dict(x=x, y=y, **found), [x.name, y.name],
                  needs=("cm_dsp.c.j2",))
