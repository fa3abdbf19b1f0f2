"""int8 fully connected layers (QGemm: x [B, K] times w [N, K]^T, B rows) on AVX2, and on
AVX512-VNNI where the build defines __AVX512VNNI__ and __AVX512VL__ (one C text, both paths).

Before:  y[r][n] = clamp(zy + RQ(b[n] + sum_k (x[r][k] - zx) w[n][k], M0[n], shift[n]))
After:   xs = x[r] sign-extended to int16 (zero-padded to KP, a multiple of 32) on the stack;
         per block of 8 outputs, eight int32 vectors acc_i += vpmaddwd(xs[k..k+16),
         sign-extended w[n+i][k..k+16)), summed across lanes (vphaddd), plus
         b'[n] = b[n] - zx sum_k w[n][k] (compile time); requantized 8 lanes at a time.
VNNI:    xs = x[r] + 128 as u8 (x XOR 0x80, zero-padded to KP), acc_i = vpdpbusd(acc_i,
         xs[k..k+32), w[n+i][k..k+32)) (four u8 x s8 products per int32 lane, no intermediate
         saturation), summed across lanes, plus b''[n] = b[n] - (zx + 128) sum_k w[n][k]
         (sum_k w (x - zx) = sum_k w (x + 128) - (zx + 128) sum_k w; the pad has weight 0).
The weights stay int8 in memory ([N8][KP], zero-padded; half the bytes of int16 pairs: batch-1
layers are bound by reading them), sign-extended in registers on the AVX2 path. Exact for every
input as int8_conv.py argues (int16 products, no vpmaddubsw saturation; vpdpbusd's products
|u w| <= 255 * 128 and their sums of four are exact int32; int32 sums modulo 2^32 of a sum
bounded below 2^31 by validation, b'' stored modulo 2^32), requantization: int8_conv.py.

Preconditions: int8_conv.int8_weights', |shift| <= 31, K <= 16384 (xs on the stack).
"""
from __future__ import annotations

import numpy as np

from ..kernels import Kernel, kernel
from .int8_conv import COMMON, epilogue, int8_weights, requant_records, vnni_bias, worst_acc

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
    n8, kp = -(-n // 8) * 8, -(-k // 32) * 32
    lanes = [c if c < n else -1 for c in range(n8)]
    found = requant_records(x_t, w_t, y_t, folded, lanes,
                            worst_acc(x_t, bias, np.abs(w).sum(axis=1)))
    if found is None:
        return None
    rq, mode = found
    wp = np.zeros((n8, kp), np.int8)
    wp[:n, :k] = w
    bq = vnni_bias(bias, w, int(x_t.quant.zero_point[0]), lanes)
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return Kernel("x86_qgemm.c.j2", dict(B=b, K=k, KP=kp, N=n, N8=n8,
                                         **epilogue(node, y_t, mode)),
                  [x.name, y.name], tables=dict(w=wp.reshape(-1), rq=rq, bq=bq), needs=COMMON)
