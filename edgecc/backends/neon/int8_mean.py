"""int8 means over H and W of an NHWC tensor (QReduceMean, axes (1, 2): a global average pool
in NHWC, which passes/layout_nhwc.py makes of a QAveragePool over a whole NHWC input) on NEON.

Before:  y[n][c] = clamp(zy + RQ(sum_{h,w} (x[n][h][w][c] - zx), M0, shift))
         with (M0, shift) = mean_multiplier(s_x, s_y, H W) (ir/quant_ref.qreduce_mean; the
         portable kernel generic/qreduce_mean.c.j2)
After:   per image and block of 16 channels, int16 sums of up to 256 pixels (SADDW / SADDW2 of
         the int8 rows: |sum| <= 256 * 128 = 2^15, exact in int16 since the sum of 256 values
         -128 is -32768 and of 256 values 127 is 32512), added into 4 int32x4 lanes (SADDW),
         then sum - zx H W (compile-time constant) and the requantization of int8_conv.py on
         16 lanes (neon_qhelpers.c.j2), 16 bytes stored; a last block of C % 16 channels
         reads and stores through 16-byte buffers.

Exact: |sum x| <= 128 H W < 2^31 for H W < 2^24 (checked), so every int32 addition is exact
and sum - zx H W equals the portable kernel's int32 accumulator.

Preconditions: int8 input and output, per-tensor quantization, a 4-D input reduced over axes
(1, 2) with keepdims, H W < 2^24, |shift| <= 31.
"""
from __future__ import annotations

from ...ir.quant import quant_range
from ...ir.quant_ref import mean_multiplier
from ..kernels import Kernel, kernel
from .int8_conv import COMMON

MAX_COUNT = 1 << 24


def mode_of(shift: int) -> str:
    """neon_qhelpers' helper for one per-tensor shift (int8_conv.rq_mode's rule)."""
    return "down" if shift <= -1 else ("right" if shift == 0 else "full")


@kernel("QReduceMean")
def qmean_nhwc(ctx, node):
    g = ctx.graph
    x_t, y_t = g.types[node.inputs[0]], g.types[node.outputs[0]]
    if (x_t.rank != 4 or tuple(node.attrs.axes) != (1, 2) or not node.attrs.keepdims
            or any(t.dtype.name != "INT8" or t.quant is None or len(t.quant.scale) != 1
                   for t in (x_t, y_t))):
        return None
    n, h, w, c = x_t.shape
    count = h * w
    if count == 0 or count >= MAX_COUNT:
        return None
    s_x, zx = float(x_t.quant.scale[0]), int(x_t.quant.zero_point[0])
    s_y, zy = float(y_t.quant.scale[0]), int(y_t.quant.zero_point[0])
    m0, shift = mean_multiplier(s_x, s_y, count)
    if abs(shift) > 31 or m0 < 0:
        return None
    qmin, qmax = quant_range(y_t.dtype.np_dtype)
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return Kernel("neon_qmean.c.j2", dict(
        N=n, HW=count, C=c, NB=c // 16, TAIL=c % 16, offset=-zx * count, m0=int(m0),
        left=max(int(shift), 0), neg_right=min(int(shift), 0), RQ=mode_of(int(shift)),
        lo=qmin - zy, hi=qmax - zy, zy=zy), [x.name, y.name], needs=COMMON)
