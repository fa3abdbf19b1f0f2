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


RND_WORDS = MAX_SHIFT + 1


def requant_records(bias, m0, e, zy, channels: int, group: int) -> np.ndarray:
    """The kernels' requantization table (int32) for ``channels`` output channels (padded with
    bias 0, M0 0, e 1 to a multiple of ``group``, at most 4): first, indexed by e, the
    rounding-plus-offset terms r = 2^(e-1) + zy 2^e of edgecc_rq (RND_WORDS words), then per
    group of channels their biases, their M0s and one word of their shifts e, a byte each
    (2 + 4 / group words per channel: 10 bytes for pairs, 9 for fours)."""
    padded = -(-channels // group) * group
    rec = np.zeros((padded, 2), np.int64)
    sh = np.ones(padded, np.int64)
    rec[:len(bias)] = np.stack([bias, m0], axis=1)
    sh[:len(bias)] = e
    packed = (sh.reshape(-1, group) << (8 * np.arange(group))).sum(axis=1)
    groups = np.concatenate([rec[:, 0].reshape(-1, group), rec[:, 1].reshape(-1, group),
                             packed[:, None]], axis=1)
    rnd = [0] + [(1 << (k - 1)) + (int(zy) << k) for k in range(1, MAX_SHIFT + 1)]
    return np.concatenate([rnd, groups.reshape(-1)]).astype(np.uint32).view(np.int32)


def layer_scalars(act_min: int, act_max: int, **more) -> dict:
    """The values a layer function shared by same-shape layers takes as arguments: the clamp
    bounds unless they are the whole int8 range (one SSAT, fixed in the code), then ``more``."""
    full = act_min == -128 and act_max == 127
    return dict(({} if full else dict(lo=act_min, hi=act_max)), **more)


def int8_layer(graph, node, channels_axis: int):
    """(x, w, y types, weights as int64 [rows, ...], bias as int64 [channels]) of a QConvNHWC
    or QGemm with int8 input, output and constant symmetric int8 weights (and a constant bias or none),
    else None; ``channels_axis``: the weights' output-channel axis after reshaping to 2-D."""
    x_t, w_t, y_t = (graph.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    b = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if (x_t.dtype.name != "INT8" or y_t.dtype.name != "INT8" or w_t.dtype.name != "INT8"
            or node.inputs[1] not in graph.constants
            or (b is not None and b not in graph.constants)
            or (w_t.quant is not None and any(w_t.quant.zero_point))):
        return None
    m = y_t.shape[-1]
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
    if node.op != "QConvNHWC" or node.attrs.group != 1:
        return None
    return matrix_facts(int8_layer(graph, node, 0))


def matrix_facts(layer) -> Optional[dict]:
    """The matrix product's facts (sizes, tables) of an ``int8_layer`` whose weights are
    [M, K] rows, or None outside the exactness conditions."""
    if layer is None:
        return None
    x_t, w_t, y_t, weights, bias = layer
    m, k = weights.shape
    zx = x_t.quant.zero_point[0]
    found = requantization(x_t, w_t, y_t, bias, np.abs(weights).sum(axis=1))
    if found is None:
        return None
    m0, e, _ = found
    k4, m2 = -(-k // 4) * 4, -(-m // 2) * 2
    w = np.zeros((m2, k4), np.int8)
    w[:m, :k] = weights
    q = requant_records(bias - zx * weights.sum(axis=1), m0, e, y_t.quant.zero_point[0], m2, 2)
    return dict(K=k, K4=k4, M=m, tables=dict(w=w.reshape(-1), q=q), zx=zx)


def scratch(facts) -> int:
    need = 2 * 2 * facts["K4"]  # two pixels' patches as int16
    return (need + SCRATCH_ALIGN - 1) // SCRATCH_ALIGN * SCRATCH_ALIGN


def emit(ctx, node):
    found = plan(ctx.graph, node)
    if found is None:
        return None
    a = node.attrs
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, m = y.shape
    pointwise = (tuple(a.kernel) == (1, 1) and tuple(a.strides) == (1, 1) and not any(a.pads)
                 and c % 4 == 0)
    return kernel(ctx, node, found, x, y, pointwise, dict(
        P=n * oh * ow, H=h, W=w, C=c, OH=oh, OW=ow, M=m, KH=a.kernel[0], KW=a.kernel[1],
        SH=a.strides[0], SW=a.strides[1], DH=a.dilations[0], DW=a.dilations[1],
        PT=a.pads[0], PL=a.pads[1]))


def kernel(ctx, node, found, x, y, pointwise: bool, geometry: dict) -> Kernel:
    """cm_conv.c.j2 for the views x -> y with ``plan``'s facts; ``geometry``: P pixels, C
    input channels, M outputs, and for patches the input, output, kernel, stride, dilation and
    pad sizes."""
    act_min, act_max = activation_bounds(node.attrs.activation, ctx.graph.types[y.name])
    small = found["K4"] <= 64 and geometry["C"] % 4 != 0  # first layers: the gather unrolled
    scalars = layer_scalars(act_min, act_max, **({} if pointwise else dict(zx=found["zx"])),
                            scratch=ctx.scratch(node))
    return Kernel("cm_conv.c.j2", dict(
        x=x, y=y, K=found["K"], K4=found["K4"], pointwise=pointwise, small=small,
        scalars=scalars, RND=RND_WORDS, **geometry),
        [x.name, y.name], tables=found["tables"], needs=("cm_dsp.c.j2",), table_args=True,
        scalars=scalars)
