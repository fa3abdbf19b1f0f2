"""int8 elementwise adds (QAdd of two same-shape tensors, no broadcasting) on NEON, 16 lanes
per step, bit-exact with the portable kernel (generic/qbinary.c.j2, TFLite's int8 Add):

    y = clamp(zy + RQ(RQ((a - za) 2^20, Ma, sha) + RQ((b - zb) 2^20, Mb, shb), My, shy))

with the multipliers of ir/quant_ref.add_multipliers. Per 16 bytes of a and b: a - za and
b - zb as int16 (SSUBL: exact, |a - za| <= 255), widened and shifted left by 20 into int32
(|(a - za) 2^20| <= 255 2^20 < 2^28: no overflow, so the portable kernel's int32 product is
the same value), each requantized with int8_conv.py's NEON requantization (neon_qhelpers.c.j2,
the form its shift allows), added (|sum| < 2^29), requantized to the output, the zero point
and the fused clamp applied, narrowed and stored; the last n % 16 elements go through
16-byte buffers.

Preconditions: int8 inputs and output with per-tensor quantization, both inputs of the
output's shape, |shift| <= 31 for the three multipliers.
"""
from __future__ import annotations

import numpy as np

from ...ir import quant_ref as R
from ..generic.int8 import activation_bounds
from ..kernels import Kernel, kernel
from .int8_conv import COMMON
from .int8_mean import mode_of


@kernel("QAdd")
def qadd(ctx, node):
    g = ctx.graph
    ta, tb, ty = (g.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if (any(t.dtype.name != "INT8" or t.quant is None or len(t.quant.scale) != 1
            for t in (ta, tb, ty)) or ta.shape != ty.shape or tb.shape != ty.shape
            or any(n in g.constants for n in node.inputs)):
        return None
    st = [(float(t.quant.scale[0]), int(t.quant.zero_point[0])) for t in (ta, tb, ty)]
    (ma, sha), (mb, shb), (my, shy) = R.add_multipliers(st[0][0], st[1][0], st[2][0])
    if max(abs(sha), abs(shb), abs(shy)) > 31:
        return None
    act_min, act_max = activation_bounds(node.attrs.activation, ty)
    zy = st[2][1]
    n = int(np.prod(ty.shape))
    a, b, y = (ctx.view(name) for name in (node.inputs[0], node.inputs[1], node.outputs[0]))
    rq = [dict(m0=int(m), left=max(int(s), 0), neg_right=min(int(s), 0), mode=mode_of(int(s)))
          for m, s in ((ma, sha), (mb, shb), (my, shy))]
    return Kernel("neon_qadd.c.j2", dict(
        n=n, NB=n // 16, TAIL=n % 16, za=st[0][1], zb=st[1][1], zy=zy, lo=act_min - zy,
        hi=act_max - zy, left_shift=R.ADD_LEFT_SHIFT, rq=rq), [a.name, b.name, y.name],
        needs=COMMON)
