"""Bit-plane storage and the numpy model of the low-bit convolution (QUANT.md, "Low-bit").

Storage (DType.packed types, and QConvBits' operands): a tensor whose last axis has C elements
of k bits is stored row by row, each row as k bit planes of CB = ceil(C / 8) bytes:
``[rows][k][CB]``; element c of the row is bit c % 8 of byte c // 8 of each plane; plane p
holds bit p of the element's k-bit code. Bits past C are 0. Codes:

  unsigned k-bit  v in [0, 2^k)            code v
  signed k-bit    v in [-2^(k-1), 2^(k-1))   code v mod 2^k (two's complement)
  binary          v in {-1, +1}            code 1 for +1, 0 for -1 (XNOR-Net's convention)

Activations are NHWC (a row = one pixel's channels), weights [M][KH][KW][C] (a row = the
channels under one kernel tap), so the dot product of a tap is a byte-wise operation on two
rows of planes.

The math the kernels compute for output (m, oh, ow), over the taps (kh, kw) that fall inside
the input (padding adds nothing: a padded element is 0, whose code is all-zero bits):

  k-bit:  acc = sum_i sum_j c_i c_j 2^(i+j) popcount(x_i AND w_j)
          with c_p = -1 for the top plane of a signed operand, else +1 (two's complement)
  binary: acc = C * taps - 2 popcount(x XOR w)      (taps: the kernel taps inside the input;
          each of the C products is +1 when the bits agree and -1 when they differ)
  k-bit input, binary weights (w = 2 b - 1):
          acc = sum_i c_i 2^i (2 popcount(x_i AND b) - popcount(x_i))

then, as the int8 kernels, y = clamp(requant(acc + b[m]) + z_y, lo, hi) (edgecc/ir/quant.py),
written as int8 (NCHW) or as the k-bit codes of y (NHWC planes). A binary output is the sign
of acc + b[m], +1 for 0 (BipolarQuant's sign(0) = +1): b[m] is then a threshold, no
requantization (passes/lower_bits.py folds the scales and the float bias into it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], np.int64)


@dataclass(frozen=True)
class Bits:
    """The integer code of a bit-plane tensor: ``bits`` planes, two's complement when
    ``signed``, or ``binary`` (one plane, -1/+1)."""

    bits: int
    signed: bool = False
    binary: bool = False

    @property
    def levels(self) -> Tuple[int, int]:
        if self.binary:
            return -1, 1
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1

    def coefficients(self) -> Tuple[int, ...]:
        """The value of each plane's bit: 2^p, negative for a signed operand's top plane."""
        return tuple(-(1 << p) if self.signed and p == self.bits - 1 else (1 << p)
                     for p in range(self.bits))


def fits(lo: int, hi: int) -> Bits:
    """The narrowest code holding every integer in [lo, hi] (unsigned when lo >= 0)."""
    if lo >= 0:
        return Bits(max(1, int(hi).bit_length()))
    k = 1
    while not (-(1 << (k - 1)) <= lo and hi <= (1 << (k - 1)) - 1):
        k += 1
    return Bits(k, signed=True)


def row_bytes(channels: int) -> int:
    return (channels + 7) // 8


def packed_bytes(shape: Sequence[int], bits: int) -> int:
    """Bytes of a tensor of ``shape`` stored as bit planes along its last axis."""
    shape = tuple(shape) or (1,)
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    return rows * bits * row_bytes(int(shape[-1]))


def pack(values: np.ndarray, code: Bits) -> np.ndarray:
    """Integer values [..., C] -> their planes, uint8 [..., bits, CB]."""
    v = np.asarray(values, np.int64)
    lo, hi = code.levels
    if v.size and (v.min() < lo or v.max() > hi or (code.binary and np.any(v == 0))):
        raise ValueError(f"values outside the {code} levels")
    bits = (v > 0).astype(np.int64) if code.binary else v & ((1 << code.bits) - 1)
    c = v.shape[-1]
    planes = np.stack([(bits >> p) & 1 for p in range(code.bits)], axis=-2).astype(np.uint8)
    pad = [(0, 0)] * (planes.ndim - 1) + [(0, 8 * row_bytes(c) - c)]
    return np.packbits(np.pad(planes, pad), axis=-1, bitorder="little")


def unpack(planes: np.ndarray, code: Bits, channels: int) -> np.ndarray:
    """The inverse of pack: uint8 [..., bits, CB] -> int64 [..., C]."""
    bits = np.unpackbits(np.asarray(planes, np.uint8), axis=-1, bitorder="little")
    bits = bits[..., :channels].astype(np.int64)
    if code.binary:
        return 2 * bits[..., 0, :] - 1
    return sum(c * bits[..., p, :] for p, c in enumerate(code.coefficients()))


def conv_acc(xp: np.ndarray, x_code: Bits, wp: np.ndarray, w_code: Bits, channels: int,
             kernel, strides, pads, dilations, out_hw) -> np.ndarray:
    """The bit-plane accumulators (no bias) of a 2-D convolution, computed the kernels' way:
    xp uint8 [N, H, W, XB, CB], wp uint8 [M, KH, KW, WB, CB] -> int64 [N, M, OH, OW]."""
    n, h, w = xp.shape[:3]
    m = wp.shape[0]
    oh, ow = out_hw
    acc = np.zeros((n, m, oh, ow), np.int64)
    for kh in range(kernel[0]):
        ih = np.arange(oh) * strides[0] - pads[0] + kh * dilations[0]
        for kw in range(kernel[1]):
            iw = np.arange(ow) * strides[1] - pads[1] + kw * dilations[1]
            inside = (((ih >= 0) & (ih < h))[:, None] & ((iw >= 0) & (iw < w))[None, :])
            rows = xp[:, np.clip(ih, 0, h - 1)][:, :, np.clip(iw, 0, w - 1)]  # N OH OW XB CB
            taps = wp[:, kh, kw]                                             # M WB CB
            if x_code.binary:
                diff = POPCOUNT8[rows[:, None, :, :, 0, :] ^ taps[None, :, None, None, 0, :]]
                tap = channels - 2 * diff.sum(-1)
            elif w_code.binary:
                tap = 0
                for i, ci in enumerate(x_code.coefficients()):
                    both = rows[:, None, :, :, i, :] & taps[None, :, None, None, 0, :]
                    ones = POPCOUNT8[rows[:, None, :, :, i, :]].sum(-1)
                    tap = tap + ci * (2 * POPCOUNT8[both].sum(-1) - ones)
            else:
                tap = 0
                for i, ci in enumerate(x_code.coefficients()):
                    for j, cj in enumerate(w_code.coefficients()):
                        both = rows[:, None, :, :, i, :] & taps[None, :, None, None, j, :]
                        tap = tap + ci * cj * POPCOUNT8[both].sum(-1)
            acc += np.where(inside[None, None], tap, 0)
    return acc


def qconv_bits(xp, x_code: Bits, wp, w_code: Bits, bias, s_x: float, s_w, s_y: float,
               channels: int, attrs, out_hw, offset: int, binary_out=False) -> np.ndarray:
    """QConvBits as the kernels compute it: int64 [N, M, OH, OW], clamped to [attrs.lo,
    attrs.hi] (int8 values with ``offset`` = z_y, or codes with offset 0), or for a binary
    output the sign of acc + bias (-1/+1, +1 for 0)."""
    from .quant import quantize_multipliers, requantize
    acc = conv_acc(xp, x_code, wp, w_code, channels, attrs.kernel, attrs.strides, attrs.pads,
                   attrs.dilations, out_hw)
    m = acc.shape[1]
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64).reshape(1, m, 1, 1)
    if binary_out:
        return np.where(acc >= 0, 1, -1)
    s_w = np.broadcast_to(np.asarray(s_w, np.float64), (m,))
    mult, shift = quantize_multipliers(s_x * s_w / s_y)
    y = requantize(acc, np.asarray(mult, np.int64).reshape(1, m, 1, 1),
                   np.asarray(shift, np.int64).reshape(1, m, 1, 1))
    return np.clip(y + offset, attrs.lo, attrs.hi)
