"""int8 convolutions with one group (pointwise 1x1 and any kh x kw, stride, dilation, padding)
on NEON, generated per layer (QConvNHWC, weights OHWI), and the requantization the NEON int8
kernels share (templates/neon_qhelpers.c.j2).

Before:  y[p][m] = clamp(zy + RQ(b[m] + sum_k (x_k(p) - zx) w[m][k], M0[m], shift[m]))
         (generic/qconv.c.j2 in NCHW; k runs over the kh x kw x C patch of output pixel p)
After:   per block of PB = 4 output pixels (fewer when the layer has fewer), their patches
         x_k(p) as bytes (the input zero point zx on padding taps; K padded to K16, a multiple
         of 16, whose pad bytes meet zero weights; a 1x1 stride-1 layer with K = K16 reads
         its input rows in place), and b'[m] = b[m] - zx sum_k w[m][k] (folded at compile
         time; a padding tap adds (zx - zx) w = 0 as in the portable kernel); then
         dot product extension (__ARM_FEATURE_DOTPROD): per block of 16 output channels,
           PB x 4 int32x4 accumulators D[p][v] (lane c = channel 4v + c) start at b' and per
           4-byte group j of the patches D[p][v] = SDOT(D[p][v], W[j][v], x(p), lane j % 4),
           where W[j][v] holds channels 4v..4v+3 x k = 4j..4j+3 (SDOT by element: each lane
           adds the 4 products of its channel with the pixel's group j, exactly); weights
           packed as [M / 16 blocks][K16 / 4 groups][16 channels][4 bytes]; requantized on 16
           lanes;
         armv8-a: per block of 4 output channels, PB x 4 int32x4 accumulators A[p][m] over
           16-byte steps, A = SADALP(A, SMLAL2(SMULL(x_lo, w_lo), x16, w16)) (8 int16 lanes
           each x_i w_i + x_{i+8} w_{i+8}, pair-added into 4 int32 lanes), the 4 lanes of
           each channel summed by ADDP (lane c = channel c), plus b', requantized on 4 lanes;
           weights packed as [M / 4 blocks][K16 / 16 steps][4 channels][16 bytes].
         Both packings are in the weights file; the build uses one.

Exactness.  |x w| <= 128 * 128 = 2^14 for int8 x, w; SMLAL2's int16 lane holds the sum of two
products, at most 128 * 127 * 2 = 32512 < 2^15 in magnitude when no weight is -128 (x may be
-128). A layer with a -128 weight (``SPLIT``) widens each half on its own: SADALP(SMULL) and
SADALP(SMULL2), one product per int16 lane. SDOT sums four products in int32 without
saturation. The int32 lanes add modulo 2^32 (intrinsics: no C overflow) and validation
(ir/ops check_accumulator) bounds the exact acc by |b| + max|x - zx| sum|w| < 2^31, so the
final sum modulo 2^32 is the exact acc (|b'| < 2^31 is checked here).

Requantization (neon_qhelpers.c.j2), equal to int8_helpers' edgecc_requantize:
* left shift l >= 0 saturated to int32: SQSHL (vqshlq_s32), by definition;
* SRDHM(a, M0) = trunc((a M0 + nudge) / 2^31), nudge = 2^30 (a M0 >= 0) or 1 - 2^30, equals
  floor((a M0 + 2^30) / 2^31) for every a (for a M0 < 0 the numerator n is negative and
  trunc(n / d) = ceil(n / d) = floor((n + d - 1) / d), d = 2^31), which is SQRDMULH's
  sat((2 a M0 + 2^31) >> 32); it saturates only for a = M0 = -2^31, impossible as M0 >= 0
  (checked);
* RDBP(h, e) rounds halves away from zero; SRSHL by -e (vrshlq_s32) computes
  floor((h + 2^(e-1)) / 2^e), halves up, so a negative h is first lowered by one: for h < 0,
  e >= 1, floor((h - 1 + 2^(e-1)) / 2^e) rounds up exactly when h mod 2^e > 2^(e-1), RDBP's
  rule (threshold (2^e - 1) >> 1 + 1). The -1 is (h AND -e) >> 31 (sign of h when e > 0; 0
  when e = 0), added with SQADD: h = -2^31 stays -2^31, which gives the same quotient for
  e >= 1. SRSHL's rounding addition is computed without overflow (Arm ARM: unbounded).
* clamp(h + zy, act_min, act_max) = clamp(h, act_min - zy, act_max - zy) + zy (no overflow).
Shorter forms, chosen per layer (``rq_mode``): without a left shift SQSHL is left out
("right"); when moreover every right shift e is >= 1 ("down") the -1 for a negative h is
SSRA h + (h >> 31), one instruction and no saturation needed: h = SQRDMULH(a, M0) >=
-M0 > -2^31 for M0 < 2^31, so h - 1 does not wrap.
tests/test_neon_kernels.py checks the helper against ir/quant.py's numpy model on edge values.

Preconditions (``layer``): int8 input, output and constant weights (zero point 0), constant
bias or none, per-tensor input and output quantization, |shift| <= 31, M0 >= 0, |b'| < 2^31
and K <= 8192 (PB patches on the stack: at most 32 KiB). The layout pass (``accepts``)
converts exactly these.
"""
from __future__ import annotations

import numpy as np

from ...passes import layout_nhwc
from ..generic.int8 import activation_bounds, requant_tables
from ..kernels import Kernel, kernel
from .layout import accepts

COMMON = ("neon_common.c.j2", "neon_qhelpers.c.j2")
PB = 4          # output pixels per block
MAX_K = 8192    # patch length (PB patches of K16 bytes on the stack)


def int8_layer(graph, node):
    """((x, w, y types), OHWI weights int64 [M, K] (depthwise: [M, kh kw]; QGemm: [N, K] as
    stored), bias int64 [M]) of a QConv/QConvNHWC/QGemm with int8 input, output and constant
    weights (zero point 0), a constant bias or none and per-tensor input and output
    quantization, else None."""
    x_t, w_t, y_t = (graph.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    b = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if (any(t.dtype.name != "INT8" for t in (x_t, w_t, y_t))
            or x_t.quant is None or len(x_t.quant.scale) != 1
            or y_t.quant is None or len(y_t.quant.scale) != 1
            or w_t.quant is None or any(w_t.quant.zero_point)
            or node.inputs[1] not in graph.constants
            or (b is not None and b not in graph.constants)):
        return None
    w = graph.constants[node.inputs[1]].astype(np.int64)
    if node.op == "QConvNHWC" and node.attrs.group != 1:  # depthwise: [1, kh, kw, M]
        w = w.transpose(3, 1, 2, 0)
    elif node.op == "QConv":                              # OIHW
        w = w.transpose(0, 2, 3, 1)
    m = w.shape[0]
    weights = w.reshape(m, -1)
    bias = (graph.constants[b].astype(np.int64).reshape(m) if b is not None
            else np.zeros(m, np.int64))
    return (x_t, w_t, y_t), weights, bias


def layer(graph, node):
    """(x, w, y types, OHWI weights int64 [M, K], requantization records) of a one-group
    QConv/QConvNHWC the kernel takes, else None."""
    if (node.op not in ("QConv", "QConvNHWC") or node.attrs.group != 1
            or graph.types[node.inputs[0]].rank != 4 or graph.types[node.inputs[1]].rank != 4):
        return None
    found = int8_layer(graph, node)
    if found is None:
        return None
    (x_t, w_t, y_t), weights, bias = found
    if weights.shape[1] > MAX_K:
        return None
    rq = requant_records(x_t, w_t, y_t, bias - int(x_t.quant.zero_point[0]) * weights.sum(1))
    if rq is None:
        return None
    return (x_t, w_t, y_t), weights, rq


def requant_records(x_t, w_t, y_t, folded) -> np.ndarray:
    """int32 [blocks of 4 channels][bias', M0, left, -right][4 lanes] (padding lanes: 0), or
    None when a shift, multiplier or folded bias is outside the kernels' range."""
    m = len(folded)
    tables = requant_tables(x_t, w_t, y_t, m)
    m0 = tables["multiplier"].astype(np.int64)
    shift = tables["shift"].astype(np.int64)
    if (np.abs(shift).max(initial=0) > 31 or m0.min(initial=0) < 0
            or np.abs(folded).max(initial=0) >= 2**31):
        return None
    per = np.stack([folded, m0, np.maximum(shift, 0), np.minimum(shift, 0)])  # [4, m]
    mb = -(-m // 4)
    out = np.zeros((4, mb * 4), np.int64)
    out[:, :m] = per
    return out.reshape(4, mb, 4).transpose(1, 0, 2).reshape(-1).astype(np.int32)


def rq_mode(x_t, w_t, y_t, m: int) -> str:
    """Which requantization helper the layer's channels allow (neon_qhelpers.c.j2): "down"
    when every shift is a right shift e >= 1, "right" when none is a left shift, else "full"."""
    shift = requant_tables(x_t, w_t, y_t, m)["shift"].astype(np.int64)
    if int(shift.max(initial=-1)) <= -1:
        return "down"
    return "right" if int(shift.max(initial=0)) <= 0 else "full"


def pack_weights(weights: np.ndarray) -> np.ndarray:
    """int8 [M / 4 blocks][K16 / 16][4 channels][16]: weights [M, K] padded with zeros."""
    m, k = weights.shape
    mb, k16 = -(-m // 4), -(-k // 16) * 16
    wp = np.zeros((mb * 4, k16), np.int64)
    wp[:m, :k] = weights
    return wp.reshape(mb, 4, k16 // 16, 16).transpose(0, 2, 1, 3).reshape(-1).astype(np.int8)


def pack_dot(weights: np.ndarray) -> np.ndarray:
    """int8 [M / 16 blocks][K16 / 4 quads][16 channels][4]: weights [M, K] padded with zeros,
    the SDOT-by-element path's read order (one vector: 4 channels x 4 k)."""
    m, k = weights.shape
    mb, k16 = -(-m // 16), -(-k // 16) * 16
    wp = np.zeros((mb * 16, k16), np.int64)
    wp[:m, :k] = weights
    return wp.reshape(mb, 16, k16 // 4, 4).transpose(0, 2, 1, 3).reshape(-1).astype(np.int8)


@accepts("QConv")
def takes(graph, node) -> bool:
    return layout_nhwc.convertible(graph, node) and layer(graph, node) is not None


@kernel("QConvNHWC")
def qconv_nhwc(ctx, node):
    found = layer(ctx.graph, node)
    if found is None:
        from .int8_depthwise import qdepthwise  # the other QConvNHWC kernel
        return qdepthwise(ctx, node)
    a = node.attrs
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    geometry = dict(N=n, OH=oh, OW=ow, H=h, W=w, C=c, KH=a.kernel[0], KW=a.kernel[1],
                    SH=a.strides[0], SW=a.strides[1], DH=a.dilations[0], DW=a.dilations[1],
                    PT=a.pads[0], PL=a.pads[1])
    return qconv_kernel(found, geometry, a.activation, [x.name, y.name])


def qconv_kernel(found, geometry: dict, activation, args) -> Kernel:
    """neon_qconv.c.j2 for ``found`` (``layer``'s answer) over ``geometry`` (N, OH, OW, H, W,
    C, KH, KW, SH, SW, DH, DW, PT, PL: NHWC), with the fused ``activation`` (a clamp)."""
    (x_t, w_t, y_t), weights, rq = found
    g = geometry
    m, k = weights.shape
    k16 = -(-k // 16) * 16
    act_min, act_max = activation_bounds(activation, y_t)
    zy = int(y_t.quant.zero_point[0])
    contiguous = ((g["KH"], g["KW"], g["SH"], g["SW"], g["PT"], g["PL"]) == (1, 1, 1, 1, 0, 0)
                  and g["H"] == g["OH"] and g["W"] == g["OW"] and k == k16)
    mb16 = -(-m // 16)
    rq16 = np.concatenate([rq, np.zeros(mb16 * 64 - len(rq), np.int32)])  # blocks of 16
    p_all = g["N"] * g["OH"] * g["OW"]
    context = dict(g, P=p_all, M=m, MB=-(-m // 4), MB16=mb16, K=k, K16=k16,
                   PB=min(PB, p_all), CONTIGUOUS=contiguous, SPLIT=bool((weights == -128).any()),
                   zx=int(x_t.quant.zero_point[0]), zy=zy, lo=act_min - zy, hi=act_max - zy,
                   RQ=rq_mode(x_t, w_t, y_t, m))
    return Kernel("neon_qconv.c.j2", context, args,
                  tables=dict(w=pack_weights(weights), wd=pack_dot(weights), rq=rq16),
                  needs=COMMON)
