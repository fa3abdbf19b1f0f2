"""int8 depthwise convolutions (group = C = M, any kh x kw, stride, dilation, padding) on AVX2,
generated per layer (QConvNHWC with weights [1, kh, kw, C]).

Before:  y[p][c] = clamp(zy + RQ(b[c] + sum_t (x_t(p)[c] - zx) w[t][c], M0[c], shift[c]))
After:   per two output pixels p (sharing each weight load) and block of 16 channels, taps in
         pairs (t, t+1); a window inside the input reads its taps at constant offsets:
         acc[c] = b'[c] + sum_t vpmaddwd(x_t(p)[c] x_t+1(p)[c], w[t][c] w[t+1][c])
         b'[c] = b[c] - zx sum_t w[t][c] (compile time); padding taps read a row of zx
         (adds 0, as in the portable kernel), an odd last tap is paired with weight 0.
The interleaving (vpunpck{l,h}wd of two taps' sign-extended rows) puts channels 0-3, 8-11 in
one vector and 4-7, 12-15 in the other; weights and requantization tables are packed in that
lane order at compile time, and vpackssdw of the two results gives the channels back in
order. Exact for every input: products of int16 values |x w| <= 2^14, pair sums <= 2^15
(int8_conv.py's argument: no vpmaddubsw saturation can arise), int32 accumulation modulo
2^32 of a sum validation bounds below 2^31; requantization: int8_conv.py.

The last r = C % 16 channels: when r <= 8, two output pixels at once (8 lanes each: the lane
order above with channels 0-7 of pixel q and of pixel q + 1; weights and tables packed so), read
8 bytes per tap; when r > 8, one 16-lane block. Those reads take bytes past channel C - 1
(the next pixel's, times weight 0) except at the end of the input tensor, where they go
through a zero-filled copy: no read past the tensor.

Preconditions: int8_conv.int8_weights' (int8, constant weights with zero point 0, per-tensor
input), depth multiplier 1, |shift| <= 31.
"""
from __future__ import annotations

import numpy as np

from ...passes import layout_nhwc
from ..kernels import Kernel
from .int8_conv import (COMMON, LANES16, epilogue, int8_weights, requant_records,
                        worst_acc)
from .layout import accepts


def layer(graph, node):
    """(types, weights [taps, C], folded bias, rq, lanes) of a depthwise layer the kernel takes."""
    if node.op not in ("QConv", "QConvNHWC") or node.attrs.group == 1:
        return None
    x_t, w_t = graph.types[node.inputs[0]], graph.types[node.inputs[1]]
    if x_t.rank != 4 or w_t.rank != 4:
        return None
    nhwc = node.op == "QConvNHWC"
    c = x_t.shape[3] if nhwc else x_t.shape[1]
    m = w_t.shape[3] if nhwc else w_t.shape[0]
    if node.attrs.group != c or m != c or (w_t.shape[0] if nhwc else w_t.shape[1]) != 1:
        return None
    found = int8_weights(graph, node, m)
    if found is None:
        return None
    x_t, w_t, y_t, w, bias = found
    taps = w.reshape(-1, c) if nhwc else w.reshape(c, -1).T  # [kh kw, C]
    folded = bias - int(x_t.quant.zero_point[0]) * taps.sum(axis=0)
    c16, r = -(-c // 16) * 16, c % 16
    pair = (0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7)  # two pixels' 8 channels
    lanes = [b + l if b + l < c else -1 for b in range(0, c16, 16)
             for l in (pair if 0 < r <= 8 and b == c16 - 16 else LANES16)]
    found = requant_records(x_t, w_t, y_t, folded, lanes,
                            worst_acc(x_t, bias, np.abs(taps).sum(axis=0)))
    if found is None:
        return None
    return dict(types=(x_t, w_t, y_t), taps=taps, rq=found[0], mode=found[1], lanes=lanes)


@accepts("QConv")
def takes(graph, node) -> bool:
    return layout_nhwc.convertible(graph, node) and layer(graph, node) is not None


def pack(taps: np.ndarray, lanes) -> np.ndarray:
    """int16 [C16 / 16][T2][2 vectors][8 lanes][2 taps]: the taps in pairs, in lane order."""
    t, c = taps.shape
    t2 = (t + 1) // 2
    padded = np.zeros((2 * t2, c + 1), np.int64)  # column c: padding lanes' zeros
    padded[:t, :c] = taps
    idx = np.array([l if l >= 0 else c for l in lanes]).reshape(-1, 2, 8)  # [blocks][2][8]
    pairs = padded.reshape(t2, 2, c + 1)  # [T2][tap in pair][C]
    out = pairs[:, :, idx]  # [T2][2 taps][blocks][2][8]
    return np.ascontiguousarray(out.transpose(2, 0, 3, 4, 1)).reshape(-1).astype(np.int16)


def qdepthwise(ctx, node):
    """The depthwise QConvNHWC kernel (int8_conv.qconv_nhwc hands these over), or None."""
    found = layer(ctx.graph, node)
    if found is None:
        return None
    a = node.attrs
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    x_t, _, y_t = found["types"]
    zx = int(x_t.quant.zero_point[0])
    t = a.kernel[0] * a.kernel[1]
    context = dict(P=n * oh * ow, OH=oh, OW=ow, H=h, W=w, C=c, KH=a.kernel[0], KW=a.kernel[1],
                   SH=a.strides[0], SW=a.strides[1], DH=a.dilations[0], DW=a.dilations[1],
                   PT=a.pads[0], PL=a.pads[1], T=t, T2=(t + 1) // 2, CB=c // 16, R=c % 16,
                   P_IN=n * h * w, **epilogue(node, y_t, found["mode"]))
    c16 = -(-c // 16) * 16
    return Kernel("x86_qdepthwise.c.j2", context, [x.name, y.name],
                  tables=dict(w=pack(found["taps"], found["lanes"]), rq=found["rq"],
                              zrow=np.full(c16, zx, np.int8)), needs=COMMON)
