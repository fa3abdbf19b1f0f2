"""int8 depthwise convolution for Cortex-M, generated per layer.

Takes a QConvNHWC with one input channel per group and channel multiplier 1 (weights
[1, kh, kw, C]), C a multiple of 4, any kernel, stride, dilation and padding. Four channels per
step: per pair of taps, the two input words are sign-extended (SXTB16), PKHBT/PKHTB pack each
channel's two taps into one word, and SMLAD multiplies them with the channel's two weights,
packed at compile time as int16 pairs (doubled, with the bias, so the accumulator arrives
doubled for SMMULR); the pairs are unrolled in inline assembly (17 instructions per 8 MACs).
An odd last tap takes SMLABB/SMLATT (one product per instruction). Taps in the padding read
a row of zero points, so the input offset folds into the bias exactly as in conv.py:
bias - zx sum_t w_t.

Layers with at most NARROW_PIXELS output pixels (the late, channel-heavy ones) keep their
weights as int8 words instead (half the flash), laid out so that SXTB16 and its ROR 8 give
each channel's pair of taps, and unpack them in the loop: 21 instructions per 8 MACs, at most
4 x 64 / 8 = 32 more instructions per weight byte saved; their accumulators are not doubled.

Exact for the same reasons as conv.py (|acc| < 2^30, right shifts 1..22, checked here; the
next backend runs other layers): the int16 lanes hold x in [-128, 127] and 2 w.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..generic.int8 import activation_bounds
from ..kernels import Kernel
from .conv import RND_WORDS, int8_layer, layer_scalars, requant_records, requantization


NARROW_PIXELS = 64


def plan(graph, node) -> Optional[dict]:
    if node.op != "QConvNHWC" or node.attrs.group == 1:
        return None
    c = graph.types[node.inputs[0]].shape[3]
    if node.attrs.group != c or graph.types[node.outputs[0]].shape[3] != c or c % 4:
        return None
    layer = int8_layer(graph, node, 1)
    if layer is None:
        return None
    x_t, w_t, y_t, taps, bias = layer  # taps: [kh kw, C]
    kh, kw = node.attrs.kernel
    zx = x_t.quant.zero_point[0]
    found = requantization(x_t, w_t, y_t, bias, np.abs(taps).sum(axis=0))
    if found is None:
        return None
    m0, e, _ = found
    t = kh * kw
    pairs = t // 2
    _, oh, ow, _ = graph.types[node.outputs[0]].shape
    narrow = oh * ow <= NARROW_PIXELS
    words = (_int8_words if narrow else _int16_words)(taps.reshape(t, c // 4, 4), pairs)
    scale = 1 if narrow else 2
    q = requant_records(scale * (bias - zx * taps.sum(axis=0)), m0, e, y_t.quant.zero_point[0],
                        c, 4)
    return dict(pairs=pairs, odd=t % 2, narrow=narrow,
                tables=dict(w=words, q=q, zrow=np.full(c, zx, np.int8)))


def _words(parts) -> np.ndarray:
    return np.concatenate(parts, axis=1).reshape(-1).astype(np.uint32).view(np.int32)


def _int16_words(taps, pairs):
    """Per group: for each pair of taps, words (2 w[first], 2 w[second]) in lanes c0, c2, c1,
    c3; an odd last tap: words (2 w[c0], 2 w[c2]), (2 w[c1], 2 w[c3])."""
    lanes = (2 * taps)[:, :, [0, 2, 1, 3]]                                  # [tap, group, lane]
    pair_words = ((lanes[0:2 * pairs:2] & 0xFFFF) | ((lanes[1:2 * pairs:2] & 0xFFFF) << 16))
    parts = [pair_words.transpose(1, 0, 2).reshape(taps.shape[1], -1)]
    if taps.shape[0] % 2:
        last = lanes[-1]                                                     # [group, lane]
        parts.append(np.stack([(last[:, 0] & 0xFFFF) | ((last[:, 1] & 0xFFFF) << 16),
                               (last[:, 2] & 0xFFFF) | ((last[:, 3] & 0xFFFF) << 16)], axis=1))
    return _words(parts)


def _int8_words(taps, pairs):
    """Per group: for each pair of taps, the bytes (w[first][c0], w[first][c2], w[second][c0],
    w[second][c2]) and the same of c1, c3 (SXTB16 and its ROR 8 give each channel's pair); an
    odd last tap: its four weights in channel order."""
    def word(b):  # [..., 4] bytes, little end first
        return sum((b[..., i] & 0xFF) << (8 * i) for i in range(4))
    first, second = taps[0:2 * pairs:2], taps[1:2 * pairs:2]               # [pair, group, lane]
    a = word(np.stack([first[..., 0], first[..., 2], second[..., 0], second[..., 2]], axis=-1))
    b = word(np.stack([first[..., 1], first[..., 3], second[..., 1], second[..., 3]], axis=-1))
    parts = [np.stack([a, b], axis=-1).transpose(1, 0, 2).reshape(taps.shape[1], -1)]
    if taps.shape[0] % 2:
        parts.append(word(taps[-1])[:, None])
    return _words(parts)


def emit(ctx, node):
    from . import depthwise_inplace
    found = plan(ctx.graph, node)
    if found is None:
        return None
    a = node.attrs
    y_t = ctx.graph.types[node.outputs[0]]
    scalars = layer_scalars(*activation_bounds(a.activation, y_t))
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    extra = depthwise_inplace.context(ctx, node)  # its in-place variant (that module)
    if extra["inplace"]:  # the ring of output rows, an argument like the tables
        scalars["scratch"] = extra.pop("scratch")
    return Kernel("cm_depthwise.c.j2", dict(**extra,
        x=x, y=y, N=n, H=h, W=w, C=c, OH=oh, OW=ow, KH=a.kernel[0], KW=a.kernel[1],
        SH=a.strides[0], SW=a.strides[1], DH=a.dilations[0], DW=a.dilations[1], PT=a.pads[0],
        PL=a.pads[1], PAIRS=found["pairs"], ODD=found["odd"], NARROW=found["narrow"],
        scalars=scalars, RND=RND_WORDS),
        [x.name, y.name], tables=found["tables"], needs=("cm_dsp.c.j2",), table_args=True,
        scalars=scalars, inplace=extra["inplace"])
