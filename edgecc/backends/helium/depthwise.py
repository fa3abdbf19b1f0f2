"""int8 depthwise convolution on Helium (MVE), generated per layer.

Takes a QConvNHWC with one input channel per group and channel multiplier 1 (weights
[1, kh, kw, C]), any channel count, kernel, stride, dilation and padding, under cortex_m's
exactness conditions (``requantization``). Eight channels per step: per tap, the inputs are
and the weights (re-laid at compile time as [tap][C'], C' = C rounded up to 8, zero-filled)
are loaded sign-extended to int16 lanes (VLDRB.S16); VMULLB/VMULLT give the even and odd
channels' products as int32 lanes, added to two accumulators (6 instructions per 8 MACs). A
last block of fewer than 8 channels loads and stores under a VCTP16 predicate. Taps in the
padding read a row of zero points, so the input offset folds into the bias as in conv.py:
bias - zx sum_t w_t. The even and odd accumulators are requantized four channels at a time
(``edgecc_hm_rq4``, tables in that order) and interleaved back by VMOVNB/VMOVNT into one
narrowing store. Under GCC, whole blocks of sixteen channels run the taps unrolled in inline
assembly (14 instructions per tap and 16 MACs; the compiler's loop took 11 per 8); the weights
are laid out for it in blocks of 16 channels, each [tap][16] (the last one [tap][8] when C'
is not a multiple of 16), which the eight-channel steps read as well.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..cortex_m.conv import int8_layer, requantization
from ..kernels import Kernel
from .conv import layer_context, layer_scalars, rq_tables


def plan(graph, node) -> Optional[dict]:
    if node.op != "QConvNHWC" or node.attrs.group == 1:
        return None
    c = graph.types[node.inputs[0]].shape[3]
    if node.attrs.group != c or graph.types[node.outputs[0]].shape[3] != c:
        return None
    layer = int8_layer(graph, node, 1)
    if layer is None:
        return None
    x_t, w_t, y_t, taps, bias = layer  # taps: [kh kw, C]
    zx = x_t.quant.zero_point[0]
    found = requantization(x_t, w_t, y_t, bias, np.abs(taps).sum(axis=0))
    if found is None:
        return None
    m0, e, r = found
    c8 = -(-c // 8) * 8
    t = taps.shape[0]
    w = np.zeros((t, c8), np.int8)
    w[:, :c] = taps
    # blocks of 16 channels (the last one 8 wide when C' is not a multiple of 16), each [tap][width]
    w = np.concatenate([w[:, b:b + 16].reshape(-1) for b in range(0, c8, 16)])
    # per block of 8 channels: the even channels' table block, then the odd channels'
    fields = np.zeros((4, c8), np.int64)
    fields[:, :c] = np.stack([bias - zx * taps.sum(axis=0), m0, e, r])
    order = np.arange(c8).reshape(-1, 4, 2).transpose(0, 2, 1).reshape(-1)
    return dict(tables=dict(w=w, zrow=np.full(c8, zx, np.int8),
                            **rq_tables(*fields[:, order])))


def emit(ctx, node):
    found = plan(ctx.graph, node)
    if found is None:
        return None
    c = layer_context(ctx, node)
    c8 = -(-c["C"] // 8) * 8
    return Kernel("hm_depthwise.c.j2", dict(c, C8=c8, C16=c8 // 16 * 16),
                  [c["x"].name, c["y"].name], tables=found["tables"], needs=("hm_mve.c.j2",),
                  table_args=True, scalars=layer_scalars(c))
