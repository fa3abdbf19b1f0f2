"""numpy models of the int8 kernels: the integer arithmetic the portable C computes, bit for bit.

The compile-time constants (multipliers, shifts, tables) are derived here by the same functions
the backend calls, so the C and these references share them; everything after that is integer
arithmetic that the tests compare element for element (tests/test_int8_kernels.py and
tests/test_int8_arith_kernels.py). Arrays are NCHW; ``q*`` arguments are per-tensor ``QuantParams`` unless said otherwise. See QUANT.md.

  QAdd    (TFLite): a' = requant((a - za) << 20, s_a / 2max), b' likewise with s_b / 2max,
          y = requant(a' + b', 2max / (2^20 s_y)) + zy, 2max = 2 max(s_a, s_b)
  QMul    y = requant((a - za)(b - zb), s_a s_b / s_y) + zy
  QMatMul y = requant(sum_k (a - za)(b - zb), s_a s_b / s_y) + zy
  QAveragePool / QReduceMean: acc = sum over the window of (x - zx),
          y = requant(acc, s_x / (s_y count)) + zy, one (M0, shift) per distinct count
  QSoftmax see qsoftmax().
  QConv / QGemm: acc = b[c] + sum (x - zx) w, y = requant(acc, s_x s_w[c] / s_y) + zy
All results are clamped to [act_min, act_max] (the output type's range unless a fused
Relu/Clip narrows it).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from .quant import dequantize, quant_range, quantize, quantize_multiplier, requantize

ADD_LEFT_SHIFT = 20      # TFLite's int8 Add: inputs scaled up by 2^20 before rescaling
SOFTMAX_EXP_BITS = 16    # QSoftmax exp table entries are exp(.) * 2^16


def _st(q) -> Tuple[float, int]:
    """(scale, zero point) of a per-tensor QuantParams."""
    return float(q.scale[0]), int(q.zero_point[0])


def _finish(acc, zy, out_dtype, bounds=None) -> np.ndarray:
    lo, hi = bounds if bounds is not None else quant_range(out_dtype)
    return np.clip(np.asarray(acc, dtype=np.int64) + zy, lo, hi).astype(out_dtype)


# -- constants -----------------------------------------------------------------------------

def add_multipliers(s_a: float, s_b: float, s_y: float):
    """((M0, shift) of input a, of input b, of the output) for QAdd (TFLite's PrepareAdd)."""
    twice_max = 2.0 * max(s_a, s_b)
    return (quantize_multiplier(s_a / twice_max), quantize_multiplier(s_b / twice_max),
            quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * s_y)))


def product_multiplier(s_a: float, s_b: float, s_y: float):
    """(M0, shift) of s_a * s_b / s_y (QMul, QMatMul)."""
    return quantize_multiplier(s_a * s_b / s_y)


def mean_multiplier(s_in: float, s_out: float, count: int):
    """(M0, shift) of s_in / (s_out * count); (0, 0) for an empty window (output = zy)."""
    return quantize_multiplier(s_in / (s_out * count)) if count > 0 else (0, 0)


def softmax_exp_table(s_in: float) -> np.ndarray:
    """T[d] = round(exp(-s_in * d) * 2^16) for d = max - x in 0..255, as uint32 (T[0] = 65536)."""
    d = np.arange(256, dtype=np.float64)
    return np.floor(np.exp(-s_in * d) * (1 << SOFTMAX_EXP_BITS) + 0.5).astype(np.uint32)


def softmax_output_multiplier(s_out: float) -> Tuple[int, int]:
    """(G, f): G = round(2^f / s_out) < 2^31 with the largest f <= 30."""
    for f in range(30, -1, -1):
        g = int(math.floor(2.0 ** f / s_out + 0.5))
        if g < 2 ** 31:
            return g, f
    raise ValueError(f"softmax output scale {s_out} is too large")


# -- elementwise ---------------------------------------------------------------------------

def qadd(a, qa, b, qb, qy, out_dtype, bounds=None) -> np.ndarray:
    (s_a, za), (s_b, zb), (s_y, zy) = _st(qa), _st(qb), _st(qy)
    (ma, sha), (mb, shb), (my, shy) = add_multipliers(s_a, s_b, s_y)
    va = requantize((np.asarray(a, np.int64) - za) * (1 << ADD_LEFT_SHIFT), ma, sha)
    vb = requantize((np.asarray(b, np.int64) - zb) * (1 << ADD_LEFT_SHIFT), mb, shb)
    return _finish(requantize(va + vb, my, shy), zy, out_dtype, bounds)


def qmul(a, qa, b, qb, qy, out_dtype, bounds=None) -> np.ndarray:
    (s_a, za), (s_b, zb), (s_y, zy) = _st(qa), _st(qb), _st(qy)
    m, sh = product_multiplier(s_a, s_b, s_y)
    acc = (np.asarray(a, np.int64) - za) * (np.asarray(b, np.int64) - zb)
    return _finish(requantize(acc, m, sh), zy, out_dtype, bounds)


def qlut(x, qx, qy, fn, out_dtype) -> np.ndarray:
    """Q_out(fn(DQ_in(x))) in float32: what a QLut table holds for each code."""
    (s_x, zx), (s_y, zy) = _st(qx), _st(qy)
    return quantize(fn(dequantize(x, s_x, zx)), s_y, zy, out_dtype)


# -- pooling and reductions ----------------------------------------------------------------

def _window_axis(in_size, out_size, k, s, d, pb, pe, include_pad):
    """A[o, i] = 1 when window o reads input i; count[o] = taps counted by the divisor.
    Taps stop at the end of the padded input (ceil mode), as backends/generic/pool.py."""
    a = np.zeros((out_size, in_size), dtype=np.int64)
    count = np.zeros(out_size, dtype=np.int64)
    for o in range(out_size):
        for t in range(k):
            i = o * s - pb + t * d
            if i >= in_size + pe:
                break
            if 0 <= i < in_size:
                a[o, i] += 1
                count[o] += 1
            elif include_pad:
                count[o] += 1
    return a, count


def average_pool_geometry(in_spatial: Sequence[int], out_spatial: Sequence[int], attrs):
    """(per-axis window matrices, divisor per output position shaped out_spatial)."""
    nsp = len(attrs.kernel)
    mats, counts = [], np.ones((), dtype=np.int64)
    for j in range(nsp):
        a, c = _window_axis(in_spatial[j], out_spatial[j], attrs.kernel[j], attrs.strides[j],
                            attrs.dilations[j], attrs.pads[j], attrs.pads[nsp + j],
                            attrs.count_include_pad)
        mats.append(a)
        counts = np.multiply.outer(counts, c)
    return mats, counts


def qaverage_pool(x, qx, qy, attrs, out_spatial, out_dtype) -> np.ndarray:
    (s_x, zx), (s_y, zy) = _st(qx), _st(qy)
    x = np.asarray(x, np.int64) - zx
    mats, counts = average_pool_geometry(x.shape[2:], out_spatial, attrs)
    letters = "dhw"[3 - len(mats):]
    spec = f"nc{letters}," + ",".join(f"{c.upper()}{c}" for c in letters) + \
        f"->nc{letters.upper()}"
    acc = np.einsum(spec, x, *mats)
    pairs = {int(c): mean_multiplier(s_x, s_y, int(c)) for c in np.unique(counts)}
    m = np.vectorize(lambda c: pairs[int(c)][0], otypes=[np.int64])(counts)
    sh = np.vectorize(lambda c: pairs[int(c)][1], otypes=[np.int64])(counts)
    return _finish(requantize(acc, m, sh), zy, out_dtype)


def qreduce_mean(x, qx, qy, axes, keepdims, out_dtype) -> np.ndarray:
    (s_x, zx), (s_y, zy) = _st(qx), _st(qy)
    x = np.asarray(x, np.int64)
    count = int(np.prod([x.shape[a] for a in axes]))
    acc = np.sum(x - zx, axis=tuple(axes), keepdims=keepdims)
    m, sh = mean_multiplier(s_x, s_y, count)
    return _finish(requantize(acc, m, sh), zy, out_dtype)


def qsoftmax(x, qx, qy, axis, end_axis, out_dtype) -> np.ndarray:
    """Integer softmax over axes [axis, end_axis), int8/uint8 in and out.

    For each row: m = max x; T = softmax_exp_table(s_x)[m - x] (so exp(s_x (x - m)) * 2^16);
    S = sum T (uint32; uint64 past 65535 elements); W = floor(G * 2^32 / S) with
    (G, f) = softmax_output_multiplier(s_y); y = zy + ((T * W + 2^(31+f)) >> (32 + f)),
    i.e. zy + round(T / (S * s_y)), clamped to the output type. T * W <= G * 2^32 < 2^63,
    so the uint64 arithmetic never wraps."""
    (s_x, _), (s_y, zy) = _st(qx), _st(qy)
    x = np.asarray(x)
    outer = int(np.prod(x.shape[:axis]))
    n = int(np.prod(x.shape[axis:end_axis]))
    x3 = x.reshape(outer, n, -1).astype(np.int64)
    table = softmax_exp_table(s_x).astype(np.uint64)
    g, f = softmax_output_multiplier(s_y)
    t = table[x3.max(axis=1, keepdims=True) - x3]
    w = np.uint64(g << 32) // t.sum(axis=1, keepdims=True, dtype=np.uint64)
    v = (t * w + np.uint64(1 << (31 + f))) >> np.uint64(32 + f)
    hi = quant_range(out_dtype)[1]
    limit = np.uint64(hi - zy)
    y = np.where(v > limit, hi, np.minimum(v, limit).astype(np.int64) + zy)
    return y.reshape(x.shape).astype(out_dtype)


# -- matrix products -----------------------------------------------------------------------

def qmatmul(a, qa, b, qb, qy, out_dtype, bounds=None) -> np.ndarray:
    """numpy/ONNX MatMul semantics (batch broadcasting, 1-D operands promoted and dropped)."""
    (s_a, za), (s_b, zb), (s_y, zy) = _st(qa), _st(qb), _st(qy)
    acc = np.matmul(np.asarray(a, np.int64) - za, np.asarray(b, np.int64) - zb)
    m, sh = product_multiplier(s_a, s_b, s_y)
    return _finish(requantize(acc, m, sh), zy, out_dtype, bounds)


def _channel_multipliers(s_x, qw, s_y, channels):
    s_w = np.broadcast_to(np.asarray(qw.scale, dtype=np.float64), (channels,))
    pairs = [quantize_multiplier(float(v)) for v in s_x * s_w / s_y]
    return (np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64))


def qgemm(x, qx, w, qw, b: Optional[np.ndarray], qy, out_dtype, bounds=None) -> np.ndarray:
    """Fully connected, w stored (N, K), per-output-channel weight scales."""
    (s_x, zx), (s_y, zy) = _st(qx), _st(qy)
    acc = (np.asarray(x, np.int64) - zx) @ np.asarray(w, np.int64).T
    if b is not None:
        acc = acc + np.asarray(b, np.int64)
    m, sh = _channel_multipliers(s_x, qw, s_y, w.shape[0])
    return _finish(requantize(acc, m, sh), zy, out_dtype, bounds)


def qconv(x, qx, w, qw, b: Optional[np.ndarray], qy, attrs, out_spatial, out_dtype,
          bounds=None) -> np.ndarray:
    """Grouped/dilated/strided conv, 1 to 3 spatial dims; padding reads the zero point."""
    (s_x, zx), (s_y, zy) = _st(qx), _st(qy)
    nsp = len(attrs.kernel)
    x = np.asarray(x, np.int64) - zx
    w = np.asarray(w, np.int64)
    n, c = x.shape[:2]
    m, groups = w.shape[0], attrs.group
    cg, mg = c // groups, m // groups
    pad = [(0, 0), (0, 0)]
    for j in range(nsp):
        need = (out_spatial[j] - 1) * attrs.strides[j] + (attrs.kernel[j] - 1) * \
            attrs.dilations[j] + 1
        pad.append((attrs.pads[j], max(0, need - attrs.pads[j] - x.shape[2 + j])))
    xp = np.pad(x, pad)  # zeros = the zero point after the subtraction
    acc = np.zeros((n, m) + tuple(out_spatial), dtype=np.int64)
    for tap in np.ndindex(*attrs.kernel):
        sl = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in
                   zip(tap, attrs.dilations, out_spatial, attrs.strides))
        window = xp[(slice(None), slice(None)) + sl]
        for g in range(groups):
            wg = w[(slice(g * mg, (g + 1) * mg), slice(None)) + tap]  # (mg, cg)
            acc[:, g * mg:(g + 1) * mg] += np.einsum(
                "nc...,mc->nm...", window[:, g * cg:(g + 1) * cg], wg)
    if b is not None:
        acc += np.asarray(b, np.int64).reshape((1, m) + (1,) * nsp)
    mult, sh = _channel_multipliers(s_x, qw, s_y, m)
    shape = (1, m) + (1,) * nsp
    return _finish(requantize(acc, mult.reshape(shape), sh.reshape(shape)), zy, out_dtype,
                   bounds)
