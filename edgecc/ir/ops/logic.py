"""IR ops (attribute records and facts): comparisons, logic, bitwise ops, Where, Mod and
element tests (IsNaN, IsInf).

Comparisons (Equal, Less, Greater, LessOrEqual, GreaterOrEqual) give bool; And, Or, Xor and
Not take and give bool; the bitwise ops, BitShift and Mod keep their integer (Mod: any
numeric) type; all broadcast like numpy. Where(cond, x, y) broadcasts its three inputs.
IsNaN and IsInf map a float tensor to bool. Sign is a unary op of ir/ops/elementwise.py.

Each numpy reference is what the C kernel (backends/generic/logic.py) computes, including
where C would be undefined: an integer x mod 0 is 0, a shift by a negative amount or by the
type's width or more gives 0 (an arithmetic right shift of a negative value: -1).
The ONNX lowerings are in compiler/lowering/logic.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class BitShiftAttrs:
    left: bool          # direction "LEFT" (else "RIGHT")


@dataclass(frozen=True)
class ModAttrs:
    fmod: bool          # C fmod semantics (sign of the dividend); else the sign of the divisor


@dataclass(frozen=True)
class IsInfAttrs:
    positive: bool = True
    negative: bool = True


COMPARE_NUMPY = {"Equal": np.equal, "Less": np.less, "Greater": np.greater,
                 "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal}
LOGIC_NUMPY = {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}
BITWISE_NUMPY = {"BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or,
                 "BitwiseXor": np.bitwise_xor}


def bitshift(a: np.ndarray, b: np.ndarray, left: bool) -> np.ndarray:
    """a << b or a >> b (arithmetic for signed a); a shift amount outside [0, bits) gives 0
    (right shift of a negative value: -1), as onnx's reference does."""
    a, b = (np.ascontiguousarray(v) for v in np.broadcast_arrays(a, b))
    bits = a.dtype.itemsize * 8
    out = (b < 0) | (b >= bits)
    s = np.where(out, 0, b)
    if left:
        u = np.dtype(f"u{a.dtype.itemsize}")
        y = np.left_shift(a.view(u), s.astype(u)).view(a.dtype)
        return np.where(out, 0, y).astype(a.dtype)
    y = np.right_shift(a, s.astype(a.dtype))
    fill = np.where(a < 0, -1, 0) if a.dtype.kind == "i" else 0
    return np.where(out, fill, y).astype(a.dtype)


def mod(a: np.ndarray, b: np.ndarray, fmod: bool) -> np.ndarray:
    """ONNX Mod: fmod=1 truncates (C's % and fmod), fmod=0 takes the divisor's sign (numpy's
    mod). Integer x mod 0 is 0 (C leaves it undefined)."""
    with np.errstate(all="ignore"):
        if a.dtype.kind == "f":
            return (np.fmod(a, b) if fmod else np.mod(a, b)).astype(a.dtype)
        safe = np.where(b == 0, 1, b).astype(b.dtype)
        r = np.fmod(a, safe) if fmod else np.mod(a, safe)
        return np.where(b == 0, 0, r).astype(a.dtype)


def _binary(fn):
    return lambda n, xs: [np.asarray(fn(xs[0], xs[1]))]


for _op, _fn in {**COMPARE_NUMPY, **LOGIC_NUMPY, **BITWISE_NUMPY}.items():
    ir_op(_op, elementwise=True, reference=_binary(_fn))

ir_op("Not", elementwise=True, reference=lambda n, xs: [np.logical_not(xs[0])])
ir_op("BitwiseNot", elementwise=True, reference=lambda n, xs: [np.invert(xs[0])])
ir_op("BitShift", elementwise=True,
      reference=lambda n, xs: [bitshift(xs[0], xs[1], n.attrs.left)])
ir_op("Mod", elementwise=True, reference=lambda n, xs: [mod(xs[0], xs[1], n.attrs.fmod)])
ir_op("Where", elementwise=True,
      reference=lambda n, xs: [np.where(xs[0].astype(bool), xs[1], xs[2]).astype(xs[1].dtype)])
ir_op("IsNaN", reference=lambda n, xs: [np.isnan(xs[0])])
ir_op("IsInf", reference=lambda n, xs: [(np.isposinf(xs[0]) & n.attrs.positive)
                                        | (np.isneginf(xs[0]) & n.attrs.negative)])
