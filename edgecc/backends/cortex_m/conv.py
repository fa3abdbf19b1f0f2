"""int8 convolution with one group for Cortex-M, generated per layer: a matrix product of the
layer's patches (im2col, two pixels at a time, into the scratch) and its weights.

Takes a QConvNHWC with group 1 (any kernel, stride, dilation, padding). Per step, two output
channels x two pixels: each pixel's patch of K = kh kw C values is sign-extended once into
the scratch as SXTB16 pairs (taps (0, 2) and (1, 3) of each group of four), each weight word
is split the same way, and SMLAD adds two products per instruction (18 instructions per 16
MACs in the inner loop). The weights are re-laid at compile time as [M', K'] rows (K rounded up
to 4, M to 2, zero-filled); an odd last pixel is computed twice and stored once.

The patches are gathered inside the kernel function, not in a helper: gcc 12 at -O2 (the
host's 12.2.0 as well as arm-none-eabi 12.2.1) clones a static function called with constant
pointers into the static arena (ipa-cp), wrongly treats the clone as free of side effects and
drops calls to it (the same bug as targets/cortex_m.py's COMPILER_WORKAROUNDS; the firmware
is built with -fno-ipa-cp, but users' builds of the emitted C may not be).

Exact by construction (tests/test_cortex_m_kernels.py checks it against the numpy model):

* the input offset is folded into the bias at compile time, padding reads the input zero
  point zx:  bias[m] + sum_k (x_k - zx) w_mk = (bias[m] - zx sum_k w_mk) + sum_k x_k w_mk;
  partial sums may wrap (SMLAD and the portable form add modulo 2^32), the final one is
  exact because |acc| < 2^30 (checked below; ``check_accumulator`` bounds it by 2^31);
* requantization (QUANT.md: RDBP(SRDHM(acc, M0), e) + zy) as SMMULR(2 acc, M0) = SRDHM for
  |acc| < 2^30, then (x + 2^(e-1) + zy 2^e - [x < 0]) >> e, exact for 1 <= e <= 22 since no
  sum can overflow; so a layer is taken only when every channel's shift is a right shift in
  that range and its largest possible |acc| is below 2^30 (otherwise the next backend runs it).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir.quant import quant_range
from ..generic.int8 import activation_bounds, requant_tables
from ..kernels import Kernel

ACC_LIMIT = 1 << 30
MAX_SHIFT = 22  # 2^(e-1) + 127 * 2^e < 2^30
SCRATCH_ALIGN = 16


def requantization(x_t, w_t, y_t, bias, abs_weight_sums):
    """(M0, e, r) per output channel when the layer meets the kernels' exactness conditions
    (worst |acc| < 2^30, right shifts 1..22), r = 2^(e-1) + zy 2^e; else None."""
    zx = x_t.quant.zero_point[0]
    lo, hi = quant_range(np.int8)
    worst = np.abs(bias) + max(abs(lo - zx), abs(hi - zx)) * abs_weight_sums
    tables = requant_tables(x_t, w_t, y_t, len(bias))
    e = -tables["shift"].astype(np.int64)
    if int(worst.max()) >= ACC_LIMIT or int(e.min()) < 1 or int(e.max()) > MAX_SHIFT:
        return None
    zy = y_t.quant.zero_point[0]
    return tables["multiplier"].astype(np.int64), e, (1 << (e - 1)) + (zy << e)


def int8_layer(graph, node, channels_axis: int):
    """(x, w, y types, weights as int64 [rows, ...], bias as int64 [channels]) of a QConvNHWC
    with int8 input, output and constant symmetric int8 weights (and a constant bias or none),
    else None; ``channels_axis``: the weights' output-channel axis after reshaping to 2-D."""
    x_t, w_t, y_t = (graph.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    b = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if (x_t.dtype.name != "INT8" or y_t.dtype.name != "INT8" or w_t.dtype.name != "INT8"
            or node.inputs[1] not in graph.constants
            or (b is not None and b not in graph.constants)
            or (w_t.quant is not None and any(w_t.quant.zero_point))):
        return None
    m = y_t.shape[3]
    w = graph.constants[node.inputs[1]]
    weights = (w.reshape(m, -1) if channels_axis == 0 else w.reshape(-1, m)).astype(np.int64)
    bias = (graph.constants[b].astype(np.int64).reshape(m) if b is not None
            else np.zeros(m, np.int64))
    return x_t, w_t, y_t, weights, bias


def group1_layer(graph, node):
    """(weights as OHWI rows [M, K], bias, zx, (M0, e, r)) of a QConvNHWC with one group that
    ``int8_layer`` and ``requantization`` accept, else None."""
    if node.op != "QConvNHWC" or node.attrs.group != 1:
        return None
    layer = int8_layer(graph, node, 0)
    if layer is None:
        return None
    x_t, w_t, y_t, weights, bias = layer
    found = requantization(x_t, w_t, y_t, bias, np.abs(weights).sum(axis=1))
    if found is None:
        return None
    return weights, bias, x_t.quant.zero_point[0], found


def plan(graph, node) -> Optional[dict]:
    """The layer's compile-time facts when this kernel computes it, else None."""
    layer = group1_layer(graph, node)
    if layer is None:
        return None
    weights, bias, zx, (m0, e, r) = layer
    m, k = weights.shape
    k4, m2 = -(-k // 4) * 4, -(-m // 2) * 2
    w = np.zeros((m2, k4), np.int8)
    w[:m, :k] = weights
    q = np.zeros((m2, 4), np.int64)
    q[:, 2] = 1
    q[:m] = np.stack([bias - zx * weights.sum(axis=1), m0, e, r], axis=1)
    return dict(K=k, K4=k4, M=m, w=w.reshape(-1), q=q.astype(np.int32).reshape(-1), zx=zx)


def scratch(facts) -> int:
    need = 2 * 2 * facts["K4"]  # two pixels' patches as int16
    return (need + SCRATCH_ALIGN - 1) // SCRATCH_ALIGN * SCRATCH_ALIGN


def emit(ctx, node):
    found = plan(ctx.graph, node)
    if found is None:
        return None
    g, a = ctx.graph, node.attrs
    y_t = g.types[node.outputs[0]]
    act_min, act_max = activation_bounds(a.activation, y_t)
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, m = y.shape
    pointwise = (tuple(a.kernel) == (1, 1) and tuple(a.strides) == (1, 1) and not any(a.pads)
                 and c % 4 == 0)
    zx = found["zx"]
    return Kernel("cm_conv.c.j2", dict(
        x=x, y=y, P=n * oh * ow, H=h, W=w, C=c, OH=oh, OW=ow, M=m, KH=a.kernel[0],
        KW=a.kernel[1], SH=a.strides[0], SW=a.strides[1], DH=a.dilations[0],
        DW=a.dilations[1], PT=a.pads[0], PL=a.pads[1], K=found["K"], K4=found["K4"],
        pointwise=pointwise, zx=zx, zx_pair=int(np.uint32((zx & 0xFFFF) * 0x10001).view(np.int32)),
        act_min=act_min, act_max=act_max, scratch=ctx.scratch(node)),
        [x.name, y.name], tables={"w": found["w"], "q": found["q"]}, needs=("cm_dsp.c.j2",))
