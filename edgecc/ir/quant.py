"""Integer arithmetic of the int8 kernels (the TFLite int8 specification CMSIS-NN follows).

numpy models of the exact integer operations, used to compute compile-time constants and, in
the tests, as the reference the C kernels must match bit for bit. See ../shared/QUANT.md.

  real = scale * (q - zero_point)
  requantize(acc, M0, shift) = RDBP(SRDHM(acc * 2^max(shift, 0), M0), max(-shift, 0))
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1


def quantize_multiplier(real: float) -> Tuple[int, int]:
    """real = M0 * 2^(shift - 31) with M0 in [2^30, 2^31): returns (M0, shift).

    ``shift`` > 0 means a left shift. real == 0 gives (0, 0)."""
    if real == 0.0:
        return 0, 0
    if real < 0:
        raise ValueError("requantization multipliers are positive")
    mantissa, exponent = math.frexp(real)  # real = mantissa * 2^exponent, mantissa in [0.5, 1)
    # TfLiteRound (std::round): halves away from zero, not Python's round-half-to-even.
    # mantissa * 2^31 is exact and has 22 fraction bits, so + 0.5 is exact too.
    m0 = int(math.floor(mantissa * (1 << 31) + 0.5))
    if m0 == 1 << 31:
        m0 //= 2
        exponent += 1
    if exponent < -31:  # too small to represent: the product rounds to zero
        return 0, 0
    # real >= 2^30: any acc != 0 saturates int32 after the left shift whether the shift is 31
    # or more, so capping it changes no result and keeps acc * 2^shift inside int64.
    return m0, min(exponent, 31)


def quantize_multipliers(reals) -> Tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in np.ravel(reals)]
    return (np.array([p[0] for p in pairs], dtype=np.int32),
            np.array([p[1] for p in pairs], dtype=np.int32))


def srdhm(a, b) -> np.ndarray:
    """Saturating rounding doubling high multiply of int32 arrays (exact halves toward +inf)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    # division by 2^31 truncating toward zero
    q = np.where(num >= 0, num >> 31, -((-num) >> 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, q).astype(np.int64)


def rdbp(x, exponent) -> np.ndarray:
    """Rounding divide by 2^exponent, halves away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> exponent) + (remainder > threshold).astype(np.int64)


def requantize(acc, m0, shift) -> np.ndarray:
    """MultiplyByQuantizedMultiplier: acc * M0 * 2^(shift-31) with the two roundings above."""
    acc = np.asarray(acc, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = np.clip(acc * (np.int64(1) << left), INT32_MIN, INT32_MAX)
    return rdbp(srdhm(shifted, m0), right)


def quant_range(dtype) -> Tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def choose_qparams(lo: float, hi: float, dtype=np.int8) -> Tuple[float, int]:
    """Asymmetric per-tensor params for the range [lo, hi], widened to hold 0 exactly."""
    qmin, qmax = quant_range(dtype)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi == lo:
        return 1.0, 0 if qmin < 0 else qmin
    scale = (hi - lo) / (qmax - qmin)
    zero_point = int(round(qmin - lo / scale))
    return float(np.float32(scale)), int(np.clip(zero_point, qmin, qmax))


def quantize(x, scale, zero_point, dtype=np.int8) -> np.ndarray:
    """Round half to even (as onnx QuantizeLinear), saturate."""
    qmin, qmax = quant_range(dtype)
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, qmin, qmax).astype(dtype)


def dequantize(q, scale, zero_point) -> np.ndarray:
    return (np.asarray(q, dtype=np.int32) - zero_point).astype(np.float32) * np.float32(scale)


def activation_bounds(act, out_t):
    """[act_min, act_max] in the output's quantized domain (fused Relu/Clip)."""
    qmin, qmax = quant_range(out_t.dtype.np_dtype)
    if act is None:
        return qmin, qmax
    s, z = out_t.quant.scale[0], out_t.quant.zero_point[0]
    lo, hi = (0.0, math.inf) if act.kind == "Relu" else (act.alpha, act.beta)

    def q(v, default):  # Q(v), saturated to the type: a bound outside it clamps nothing
        if math.isinf(v):
            return default
        with np.errstate(over="ignore"):  # a missing Clip bound is +-FLT_MAX: v / s overflows
            r = np.rint(np.float32(v) / np.float32(s))
        return int(np.clip(z + float(r), qmin, qmax))
    hi_q = q(hi, qmax)
    return min(q(lo, qmin), hi_q), hi_q  # min > max: everything is max, as ONNX Clip
