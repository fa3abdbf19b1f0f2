"""int8 fully connected layers (QGemm: x [B, K] times w [N, K]^T, B rows) on AVX2.

Before:  y[r][n] = clamp(zy + RQ(b[n] + sum_k (x[r][k] - zx) w[n][k], M0[n], shift[n]))
After:   xs = x[r] sign-extended to int16 (zero-padded to K16, a multiple of 16) on the stack;
         per block of 8 outputs, eight int32 vectors acc_i += vpmaddwd(xs[k..k+16),
         sign-extended w[n+i][k..k+16)), summed across lanes (vphaddd), plus
         b'[n] = b[n] - zx sum_k w[n][k] (compile time); requantized 8 lanes at a time.
The weights stay int8 in memory ([N8][K16], zero-padded; half the bytes of int16 pairs: batch-1
layers are bound by reading them) and are sign-extended in registers. Exact for every input as
int8_conv.py argues (int16 products, no vpmaddubsw saturation; int32 sums modulo 2^32 of a sum
bounded below 2^31 by validation), requantization: int8_conv.py.

Preconditions: int8_conv.int8_weights', |shift| <= 31, K <= 16384 (xs on the stack).
"""
from __future__ import annotations

import numpy as np

from ..kernels import Kernel, kernel
from .int8_conv import COMMON, epilogue, int8_weights, requant_records, worst_acc

MAX_K = 16384


@kernel("QGemm")
def qgemm(ctx, node):
    g = ctx.graph
    x_t, y_t = g.types[node.inputs[0]], g.types[node.outputs[0]]
    if x_t.rank != 2 or y_t.rank != 2 or g.types[node.inputs[1]].rank != 2:
        return None
    (b, k), n = x_t.shape, y_t.shape[1]
    found = int8_weights(g, node, n)
    if found is None or k > MAX_K or found[3].shape != (n, k):
        return None
    x_t, w_t, y_t, w, bias = found
    folded = bias - int(x_t.quant.zero_point[0]) * w.sum(axis=1)
    n8, k16 = -(-n // 8) * 8, -(-k // 16) * 16
    found = requant_records(x_t, w_t, y_t, folded, [c if c < n else -1 for c in range(n8)],
                            worst_acc(x_t, bias, np.abs(w).sum(axis=1)))
    if found is None:
        return None
    rq, mode = found
    wp = np.zeros((n8, k16), np.int8)
    wp[:n, :k] = w
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return Kernel("x86_qgemm.c.j2", dict(B=b, K=k, K16=k16, N=n, N8=n8,
                                         **epilogue(node, y_t, mode)),
                  [x.name, y.name], tables=dict(w=wp.reshape(-1), rq=rq), needs=COMMON)
