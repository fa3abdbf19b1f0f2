"""int8 depthwise convolutions (group = C = M, one output channel per input channel) on NEON,
generated per layer (QConvNHWC, weights [M, kh, kw, 1]).

Before:  y[p][c] = clamp(zy + RQ(b[c] + sum_t (x_t(p)[c] - zx) w[t][c], M0[c], shift[c]))
         (t runs over the kh x kw taps of output pixel p; generic/qconv.c.j2 in NCHW)
After:   per output pixel and block of 16 channels, four int32x4 accumulators start at
         b'[c] = b[c] - zx sum_t w[t][c] (folded at compile time) and per tap add
         x_t[c] w[t][c]: SMULL / SMULL2 (int8 x int8 -> int16, exact: |x w| <= 2^14) then
         SADDW / SADDW2 into int32; a padding tap reads x = zx (a vector of zx), which adds
         zx w and so cancels the fold: (zx - zx) w = 0 as in the portable kernel. Then the
         requantization of int8_conv.py (neon_qhelpers.c.j2) on 4 lanes at a time and the 16
         bytes stored. The last block of C % 16 channels reads and stores through a 16-byte
         buffer (no access past the tensors). Weights are packed as [taps][C16] (channels
         padded to a multiple of 16 with zero weights).

Exactness: every product fits int16 and the int32 lanes add modulo 2^32; validation bounds the
exact acc by |b| + max|x - zx| sum|w| < 2^31, so the final sum is the exact acc.

Preconditions (``layer``): a QConv/QConvNHWC with group = C = M, int8 input, output and
constant weights (zero point 0), constant bias or none, per-tensor input and output
quantization, and the requantization ranges of int8_conv.requant_records.
"""
from __future__ import annotations

import numpy as np

from ...passes import layout_nhwc
from ..generic.int8 import activation_bounds
from ..kernels import Kernel, kernel
from .int8_conv import COMMON, int8_layer, requant_records, rq_mode
from .layout import accepts


def layer(graph, node):
    """(x, w, y types, weights int64 [M, taps], folded bias) of a depthwise QConv/QConvNHWC
    the kernel takes, else None."""
    if (node.op not in ("QConv", "QConvNHWC") or node.attrs.group == 1
            or graph.types[node.inputs[0]].rank != 4 or graph.types[node.inputs[1]].rank != 4):
        return None
    found = int8_layer(graph, node)
    if found is None:
        return None
    (x_t, w_t, y_t), weights, bias = found
    m = weights.shape[0]
    c = x_t.shape[1] if node.op == "QConv" else x_t.shape[3]
    if node.attrs.group != c or m != c or weights.shape[1] != node.attrs.kernel[0] * \
            node.attrs.kernel[1]:
        return None
    folded = bias - int(x_t.quant.zero_point[0]) * weights.sum(axis=1)
    rq = requant_records(x_t, w_t, y_t, folded)
    if rq is None:
        return None
    c16 = -(-m // 16) * 16
    rq = np.concatenate([rq, np.zeros((c16 - len(rq) // 4) * 4, np.int32)])
    return (x_t, w_t, y_t), weights, rq


@accepts("QConv")
def takes(graph, node) -> bool:
    return layout_nhwc.convertible(graph, node) and layer(graph, node) is not None


def qdepthwise(ctx, node):
    """The depthwise QConvNHWC kernel (int8_conv.qconv_nhwc asks it for group > 1)."""
    found = layer(ctx.graph, node)
    if found is None:
        return None
    (x_t, _, y_t), weights, rq = found
    a = node.attrs
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    c16 = -(-c // 16) * 16
    packed = np.zeros((weights.shape[1], c16), np.int64)
    packed[:, :c] = weights.T
    act_min, act_max = activation_bounds(a.activation, y_t)
    zy = int(y_t.quant.zero_point[0])
    context = dict(N=n, OH=oh, OW=ow, H=h, W=w, C=c, C16=c16, NB=c // 16, TAIL=c % 16,
                   KH=a.kernel[0], KW=a.kernel[1], SH=a.strides[0], SW=a.strides[1],
                   DH=a.dilations[0], DW=a.dilations[1], PT=a.pads[0], PL=a.pads[1],
                   zx=int(x_t.quant.zero_point[0]), zy=zy, lo=act_min - zy, hi=act_max - zy,
                   SPLIT=bool((weights == -128).any()),
                   RQ=rq_mode(x_t, ctx.graph.types[node.inputs[1]], y_t, c))
    return Kernel("neon_qdepthwise.c.j2", context, [x.name, y.name],
                  tables=dict(w=packed.reshape(-1).astype(np.int8), rq=rq), needs=COMMON)
