"""numpy models of the CMSIS-NN s8 functions edgecc calls, as their API documents them.

The semantics are TFLite's int8 reference kernels (NHWC activations, offsets as CMSIS-NN
takes them: ``input_offset = -z_in``, ``output_offset = +z_out``, double-rounding
requantization of ``edgecc.ir.quant.requantize``). ``edgecc/runtime_c/cmsis_nn/`` must match
these bit for bit (tests/test_cmsis_nn.py), and so must the real CMSIS-NN library.

Layouts: input ``(N, H, W, C)``; convolution filter ``(C_OUT, KH, KW, C_IN / groups)``;
depthwise filter ``(1, KH, KW, C_OUT)`` with ``C_OUT = C_IN * ch_mult``; fully connected
filter ``(C_OUT, K)``. ``stride``, ``padding`` (top, left) and ``dilation`` are (h, w) pairs;
``out_hw`` is the output (H, W) the caller passes in ``output_dims``.

``softmax_params(input_scale, beta)`` gives ``arm_softmax_s8``'s (mult, shift, diff_min).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from ...ir.quant import quantize_multiplier, rdbp, requantize, srdhm

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
SOFTMAX_SCALED_DIFF_INT_BITS = 5   # d is scaled into Q5.26
SOFTMAX_ACCUM_INT_BITS = 12        # the sum of exps is Q12.19


def _finish(acc, multipliers, shifts, output_offset, act_min, act_max) -> np.ndarray:
    y = requantize(acc, multipliers, shifts) + output_offset
    return np.clip(y, act_min, act_max).astype(np.int8)


def _taps(out_size, k, stride, pad, dilation, in_size):
    """Input index of each (output position, tap) and whether it lies inside the input."""
    idx = (np.arange(out_size)[:, None] * stride - pad + np.arange(k)[None, :] * dilation)
    return np.clip(idx, 0, max(in_size - 1, 0)), (idx >= 0) & (idx < in_size)


def _patches(x, kernel, stride, padding, dilation, out_hw, input_offset):
    """(N, OH, OW, KH, KW, C) int64 windows of x + input_offset, 0 where padded."""
    xo = np.asarray(x, dtype=np.int64) + input_offset
    iy, vy = _taps(out_hw[0], kernel[0], stride[0], padding[0], dilation[0], xo.shape[1])
    ix, vx = _taps(out_hw[1], kernel[1], stride[1], padding[1], dilation[1], xo.shape[2])
    p = xo[:, iy[:, None, :, None], ix[None, :, None, :], :]       # N, OH, OW, KH, KW, C
    valid = vy[:, None, :, None] & vx[None, :, None, :]           # OH, OW, KH, KW
    return np.where(valid[None, :, :, :, :, None], p, 0), valid


def convolve_s8(x, w, bias: Optional[np.ndarray], *, input_offset: int, output_offset: int,
                multipliers, shifts, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                out_hw: Sequence[int], act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """arm_convolve_wrapper_s8: groups = C_IN / w.shape[3]."""
    w = np.asarray(w, dtype=np.int64)
    c_out, kh, kw, c_group = w.shape
    groups = x.shape[3] // c_group
    p, _ = _patches(x, (kh, kw), stride, padding, dilation, out_hw, input_offset)
    per_group = c_out // groups
    acc = np.concatenate([
        np.einsum("nyxhwc,ohwc->nyxo", p[..., g * c_group:(g + 1) * c_group],
                  w[g * per_group:(g + 1) * per_group])
        for g in range(groups)], axis=-1)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return _finish(acc, multipliers, shifts, output_offset, act_min, act_max)


def depthwise_conv_s8(x, w, bias: Optional[np.ndarray], *, ch_mult: int, input_offset: int,
                      output_offset: int, multipliers, shifts, stride=(1, 1), padding=(0, 0),
                      dilation=(1, 1), out_hw: Sequence[int], act_min: int = -128,
                      act_max: int = 127) -> np.ndarray:
    """arm_depthwise_conv_wrapper_s8: output channel c reads input channel c // ch_mult."""
    w = np.asarray(w, dtype=np.int64)[0]                          # KH, KW, C_OUT
    kh, kw, c_out = w.shape
    p, _ = _patches(x, (kh, kw), stride, padding, dilation, out_hw, input_offset)
    p = np.repeat(p, ch_mult, axis=-1)                            # channel c -> c // ch_mult
    acc = np.einsum("nyxhwc,hwc->nyxc", p, w)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return _finish(acc, multipliers, shifts, output_offset, act_min, act_max)


def fully_connected_s8(x, w, bias: Optional[np.ndarray], *, input_offset: int,
                       filter_offset: int = 0, output_offset: int, multiplier, shift,
                       act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """arm_fully_connected_s8 (scalar multiplier/shift) and arm_fully_connected_per_channel_s8
    (one per output channel): x (N, K), w (C_OUT, K) -> (N, C_OUT)."""
    xo = np.asarray(x, dtype=np.int64) + input_offset
    wo = np.asarray(w, dtype=np.int64) + filter_offset
    acc = xo @ wo.T
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return _finish(acc, multiplier, shift, output_offset, act_min, act_max)


def avgpool_s8(x, *, kernel, stride=(1, 1), padding=(0, 0), out_hw: Sequence[int],
               act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """arm_avgpool_s8: mean of the valid elements, rounded half away from zero."""
    p, valid = _patches(x, kernel, stride, padding, (1, 1), out_hw, 0)
    total = p.sum(axis=(3, 4))                                    # N, OH, OW, C
    count = valid.sum(axis=(2, 3))[None, :, :, None].astype(np.int64)
    half = count // 2
    # C division truncates toward zero
    num = np.where(total > 0, total + half, total - half)
    avg = np.sign(num) * (np.abs(num) // count)
    return np.clip(avg, act_min, act_max).astype(np.int8)


def max_pool_s8(x, *, kernel, stride=(1, 1), padding=(0, 0), out_hw: Sequence[int],
                act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """arm_max_pool_s8: maximum of the valid elements."""
    p, valid = _patches(x, kernel, stride, padding, (1, 1), out_hw, 0)
    p = np.where(valid[None, :, :, :, :, None], p, -128)
    return np.clip(p.max(axis=(3, 4)), act_min, act_max).astype(np.int8)


def elementwise_add_s8(a, b, *, input_1_offset, input_1_mult, input_1_shift, input_2_offset,
                       input_2_mult, input_2_shift, left_shift, out_offset, out_mult, out_shift,
                       act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """arm_elementwise_add_s8 (TFLite int8 Add)."""
    sa = requantize((np.asarray(a, np.int64) + input_1_offset) << left_shift, input_1_mult,
                    input_1_shift)
    sb = requantize((np.asarray(b, np.int64) + input_2_offset) << left_shift, input_2_mult,
                    input_2_shift)
    return _finish(sa + sb, out_mult, out_shift, out_offset, act_min, act_max)


def elementwise_mul_s8(a, b, *, input_1_offset, input_2_offset, out_offset, out_mult,
                       out_shift, act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """arm_elementwise_mul_s8 (TFLite int8 Mul)."""
    prod = (np.asarray(a, np.int64) + input_1_offset) * (np.asarray(b, np.int64) + input_2_offset)
    return _finish(prod, out_mult, out_shift, out_offset, act_min, act_max)


# -- softmax: TFLite's fixed-point exp and reciprocal (gemmlowp), on int64 arrays -----------

def _sat_mul_pot(x, e: int) -> np.ndarray:
    """x * 2^e saturated to int32 (e > 0)."""
    t = (1 << (31 - e)) - 1
    return np.where(x > t, INT32_MAX, np.where(x < -t, INT32_MIN, x * (1 << e)))


def _wrap32(x) -> np.ndarray:
    """int32 two's complement wrap-around of int64 values (the C additions never wrap; this
    only keeps the model honest if they would)."""
    return ((np.asarray(x, np.int64) + 2**31) % 2**32) - 2**31


def _exp_on_interval_quarter(a) -> np.ndarray:
    """exp(a), a in [-1/4, 0) in Q0.31 -> Q0.31 (Taylor series around -1/8)."""
    c = 1895147668                       # exp(-1/8)
    x = _wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbp(x4, 2)
    tail = rdbp(_wrap32(srdhm(_wrap32(x4_over_4 + x3), 715827883) + x2), 1)
    return _wrap32(c + srdhm(c, _wrap32(x + tail)))


_EXP_MINUS_POW2 = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def exp_on_negative_values(a) -> np.ndarray:
    """exp(a) for a <= 0 in Q5.26 -> Q0.31."""
    a = np.asarray(a, dtype=np.int64)
    quarter = 1 << 24
    a_mod = (a & (quarter - 1)) - quarter
    remainder = a_mod - a
    result = _exp_on_interval_quarter(_sat_mul_pot(a_mod, 5))
    for k, m in enumerate(_EXP_MINUS_POW2):
        result = np.where(remainder & (1 << (24 + k)), srdhm(result, m), result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x(a) -> np.ndarray:
    """1 / (1 + a) for a in [0, 1), Q0.31 -> Q0.31 (Newton-Raphson)."""
    s = np.asarray(a, dtype=np.int64) + INT32_MAX
    half_den = np.where(s >= 0, (s + 1) // 2, -((-(s - 1)) // 2))    # (s +- 1) / 2 toward 0
    x = _wrap32(1515870810 + srdhm(half_den, -1010580540))         # 48/17 - 32/17 d, Q2.29
    for _ in range(3):
        one_minus = _wrap32((1 << 29) - srdhm(half_den, x))
        x = _wrap32(x + _sat_mul_pot(srdhm(x, one_minus), 2))
    return _sat_mul_pot(x, 1)


def softmax_s8(x, mult: int, shift: int, diff_min: int) -> np.ndarray:
    """arm_softmax_s8 over the last axis of x (rows of row_size): output scale 1/256, zero
    point -128. A row whose sum of exps passes 2^28 (hundreds of elements near the maximum)
    makes the last rounding shift exceed 31, where TFLite's reference asserts; every
    probability is at most 1/512 there, and this and the C give 0 (output -128)."""
    x = np.asarray(x, dtype=np.int64)
    rows = x.reshape(-1, x.shape[-1])
    diff = rows - rows.max(axis=1, keepdims=True)
    ok = diff >= diff_min
    scaled = srdhm(np.clip(diff * (1 << shift), INT32_MIN, INT32_MAX), mult)
    e = exp_on_negative_values(np.where(ok, scaled, 0))
    total = np.where(ok, rdbp(e, SOFTMAX_ACCUM_INT_BITS), 0).sum(axis=1, keepdims=True)
    out = np.full(rows.shape, -128, dtype=np.int64)
    for r in range(rows.shape[0]):
        s = int(total[r, 0])
        if s <= 0:
            continue
        headroom = 32 - s.bit_length()
        bits_over_unit = SOFTMAX_ACCUM_INT_BITS - headroom
        scale = one_over_one_plus_x(np.int64(((s << headroom) & 0xFFFFFFFF) - 2**31))
        v = rdbp(srdhm(scale, e[r]), bits_over_unit + 31 - 8) - 128
        out[r] = np.where(ok[r], np.clip(v, -128, 127), -128)
    return out.reshape(x.shape).astype(np.int8)


def softmax_params(input_scale: float, beta: float = 1.0) -> Tuple[int, int, int]:
    """(mult, shift, diff_min) of arm_softmax_s8 for an int8 input of scale ``input_scale``
    (TFLite's PreprocessSoftmaxScaling and CalculateInputRadius with 5 integer bits)."""
    ib = SOFTMAX_SCALED_DIFF_INT_BITS
    real = min(beta * input_scale * (1 << (31 - ib)), (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"softmax input scale {input_scale} (beta {beta}) is too small")
    radius = math.floor(((1 << ib) - 1) * (1 << (31 - ib)) / (1 << shift))
    return int(mult), int(shift), -int(radius)
