"""int8 mean over H and W of an NHWC tensor for Cortex-M (a global average pool: QReduceMean
with axes (1, 2), which passes/layout_nhwc.py makes of one), generated per layer.

Four channels per step: each pixel's word of four inputs is added into two registers of
int16 lanes with SXTAB16 (channels c, c+2 and c+1, c+3: two instructions per four inputs),
at most 256 pixels at a time so a lane cannot overflow (256 x 128 = 2^15), then widened
into int32 sums; other channels are summed one by one. acc = sum - count zx, and the
requantization by s_x / (s_y count) is conv.py's (|acc| < 2^30: count < 2^22; right shifts
1..22; other layers go to the next backend). Exact: tests/test_cortex_m_kernels.py.
"""
from __future__ import annotations

from typing import Optional

from ...ir import quant_ref as R
from ..kernels import Kernel
from .conv import MAX_SHIFT

CHUNK = 256
MAX_COUNT = 1 << 22


def plan(graph, node) -> Optional[dict]:
    if node.op != "QReduceMean" or tuple(node.attrs.axes) != (1, 2) or not node.attrs.keepdims:
        return None
    x_t, y_t = graph.types[node.inputs[0]], graph.types[node.outputs[0]]
    if x_t.rank != 4 or x_t.dtype.name != "INT8" or y_t.dtype.name != "INT8":
        return None
    count = x_t.shape[1] * x_t.shape[2]
    (s_x, zx), (s_y, zy) = ((float(t.quant.scale[0]), int(t.quant.zero_point[0]))
                            for t in (x_t, y_t))
    m0, shift = R.mean_multiplier(s_x, s_y, count)
    if not 0 < count < MAX_COUNT or not 1 <= -shift <= MAX_SHIFT:
        return None
    e = -shift
    return dict(count=count, zx=zx, m0=m0, e=e, r=(1 << (e - 1)) + (zy << e))


def emit(ctx, node):
    found = plan(ctx.graph, node)
    if found is None:
        return None
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return Kernel("cm_mean.c.j2", dict(x=x, y=y, N=x.shape[0], C=x.shape[3], CHUNK=CHUNK,
                                       **found), [x.name, y.name], needs=("cm_dsp.c.j2",))
