"""float32 global average on AVX2 (issue 13): the ReduceMean over H and W of an NHWC tensor
that passes/layout_nhwc.py makes of a global AveragePool (layout_rule.float_average_pool).

Takes a ReduceMean of a float32 4-D tensor over axes (1, 2); anything else returns None.

    y[n, c] = (sum_{h, w} x[n, h, w, c]) / (H W)

The channels run in groups of up to 4 blocks of 8 (independent accumulators), the pixels in
order (a unit-stride walk over the tensor); a channel tail (C not a multiple of 8) is read
and stored with masks. The division is the portable kernel's (acc / count).
"""
from __future__ import annotations

from ...ir import DType
from ..codegen import c_literal
from ..kernels import Kernel, kernel
from .float_conv import COMMON, _tail_mask

GROUP = 4  # blocks of 8 channels per group


@kernel("ReduceMean")
def mean_hw(ctx, node):
    x_t = ctx.graph.types[node.inputs[0]]
    if x_t.dtype != DType.FLOAT32 or x_t.rank != 4 or tuple(node.attrs.axes) != (1, 2):
        return None
    n, h, w, c = x_t.shape
    blocks = -(-c // 8)
    full, tail = divmod(blocks, GROUP)
    if c % 8 and not tail:  # the masked block goes in the last (tail) group
        full, tail = full - 1, GROUP
    return Kernel("x86_mean.c.j2", dict(
        N=n, P=h * w, C=c, G=GROUP, FULL=full, TAIL=tail, masked=c % 8 != 0,
        mask=_tail_mask(c % 8), count=c_literal(h * w, DType.FLOAT32)),
        [node.inputs[0], node.outputs[0]], needs=COMMON)
