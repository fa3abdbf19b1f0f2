"""IR ops FakeQuant and FakeTrunc: QONNX's Quant, BipolarQuant and Trunc (what Brevitas'
export_qonnx emits around every quantized layer; Trunc after a quantized average pool) on a
float32 tensor: quantize to integer levels, clamp, dequantize,
all in float32, in the order the qonnx package's executor computes them, so that the
portable C equals that reference bit for bit.

Before (QONNX, domain qonnx.custom_op.general or finn.custom_op.general):
    Quant(x, scale, zero_point, bit_width; signed, narrow, rounding_mode)
    BipolarQuant(x, scale)
After:  FakeQuant(x, scale, zero_point) with FakeQuantAttrs; scale and zero point constants
        broadcast against x (per tensor or per channel).
Math (float32, step by step):
    kind "int":   v = x / scale + zero_point; v = min(v, hi) where v > hi; v = lo where v < lo
                  (NaN stays NaN); v = rnd(v); y = (v - zero_point) * scale
                  lo, hi = -2^(b-1) + narrow, 2^(b-1) - 1 (signed); 0, 2^b - 1 - narrow
                  rnd: ROUND / HALF_EVEN half to even, CEIL, FLOOR, DOWN / ROUND_TO_ZERO (trunc),
                  UP (away from zero), HALF_UP, HALF_DOWN (ties away from / toward zero)
    kind "sign1": Quant with bit_width 1 and signed, as qonnx executes it:
                  v = x / scale + zero_point; v = v >= 0 ? 1 : -1; y = (v - zero_point) * scale
    kind "bipolar": BipolarQuant: y = (x >= 0 ? 1 : -1) * scale (sign(0) = +1, NaN -> -1)
Preconditions (``check``): float32 x, scale finite and > 0, zero point finite, both
broadcastable to x.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..registry import ir_op

ROUNDING = {
    "ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor,
    "DOWN": np.fix, "ROUND_TO_ZERO": np.fix,
    "UP": lambda v: np.sign(v) * np.ceil(np.abs(v)),
    "HALF_UP": lambda v: np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)),
    "HALF_DOWN": lambda v: np.sign(v) * np.ceil(np.abs(v) - np.float32(0.5)),
}


@dataclass(frozen=True)
class FakeQuantAttrs:
    kind: str          # "int", "sign1" or "bipolar"
    lo: int = 0        # the integer levels' bounds (kind "int")
    hi: int = 0
    rounding: str = "ROUND"
    bits: int = 0      # for reports: the bit width the levels fit


def levels(bits: int, signed: bool, narrow: bool):
    """(lo, hi) of QONNX's Quant: its min_int and max_int."""
    if signed:
        return -(1 << (bits - 1)) + int(narrow), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - int(narrow)


def fake_quant(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
               attrs: FakeQuantAttrs) -> np.ndarray:
    """The op in numpy float32 (qonnx's int_quant / binary_quant, step by step)."""
    f32 = np.float32
    x, s, z = (np.asarray(a, f32) for a in (x, scale, zero_point))
    one = np.ones((), f32)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if attrs.kind == "bipolar":
            return (np.where(x >= 0, one, -one) * s).astype(f32)
        v = x / s + z
        if attrs.kind == "sign1":
            v = np.where(v >= 0, one, -one)
        else:
            v = np.where(v > attrs.hi, f32(attrs.hi), v)
            v = np.where(v < attrs.lo, f32(attrs.lo), v)
            v = ROUNDING[attrs.rounding](v).astype(f32)
        return ((v - z) * s).astype(f32)


def _reference(node, xs):
    return [fake_quant(xs[0], xs[1], xs[2], node.attrs)]


def _operands(graph, node, names) -> Optional[str]:
    """x float32; inputs 1.. (named ``names``) finite compile-time constants broadcasting to
    x, the scales (names ending in "scale") > 0."""
    x_t = graph.types[node.inputs[0]]
    if x_t.dtype.name != "FLOAT32":
        return f"{node.op} of {x_t.dtype.name.lower()}: float32 only"
    for pos, what in enumerate(names, start=1):
        value = graph.constants.get(node.inputs[pos])
        if value is None:
            return f"the {what} must be a compile-time constant"
        flat = np.asarray(value, np.float64).reshape(-1)
        positive = what.endswith("scale")
        if not np.all(np.isfinite(flat)) or (positive and not np.all(flat > 0)):
            return f"the {what} must be finite{' and > 0' if positive else ''}"
        try:
            if np.broadcast_shapes(np.shape(value), x_t.shape) != tuple(x_t.shape):
                raise ValueError
        except ValueError:
            return f"{what} {list(np.shape(value))} does not broadcast to {list(x_t.shape)}"
    return None


def check(graph, node) -> Optional[str]:
    bad = _operands(graph, node, ("scale", "zero point"))
    a = node.attrs
    if bad is None and (a.kind not in ("int", "sign1", "bipolar") or a.rounding not in ROUNDING
                        or a.lo > a.hi):
        bad = f"unsupported FakeQuant {a}"
    return bad


ir_op("FakeQuant", reference=_reference, check=check)


@dataclass(frozen=True)
class FakeTruncAttrs:
    """QONNX Trunc (Brevitas' TruncAvgPool2d output): inputs x, scale, zero point, the
    truncation scale t (a power of two), the output scale and the output zero point."""
    clamp: bool        # v2 clamps to [lo, hi]; v1 does not
    lo: int = 0
    hi: int = 0
    rounding: str = "FLOOR"
    bits: int = 0


def fake_trunc(x, scale, zero_point, tscale, out_scale, out_zero_point,
               attrs: FakeTruncAttrs) -> np.ndarray:
    """qonnx's trunc_v2 (v1 without the clamp, with out_scale = scale, out_zero_point =
    zero_point), float32 step by step:
        v = rnd_even(x / scale + zero_point) / tscale; v = clamp(v, lo, hi) (v2);
        v = rnd(v); y = (v - out_zero_point) * out_scale"""
    f32 = np.float32
    x, s, z, t, os_, oz = (np.asarray(a, f32) for a in
                           (x, scale, zero_point, tscale, out_scale, out_zero_point))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        v = np.round(x / s + z) / t
        if attrs.clamp:
            v = np.where(v > attrs.hi, f32(attrs.hi), v)
            v = np.where(v < attrs.lo, f32(attrs.lo), v)
        v = ROUNDING[attrs.rounding](v).astype(f32)
        return ((v - oz) * os_).astype(f32)


def trunc_constants(scale, zero_point, in_bits: int, out_bits: int, out_scale=None,
                    signed: bool = True, narrow: bool = False, rounding: str = "FLOOR"):
    """(scale, zero point, truncation scale, output scale, output zero point), attrs of a
    QONNX Trunc: v2 when ``out_scale`` is given (truncation scale 2^round(log2(out_scale /
    scale)), output zero point zero_point / that, clamp to the output bits' levels), else v1
    (2^(in_bits - out_bits), the input's scale and zero point, no clamp); float32 as qonnx."""
    f32 = np.float32
    scale, zero_point = np.asarray(scale, f32), np.asarray(zero_point, f32)
    if out_scale is None:
        tscale = np.asarray(f32(2.0 ** (in_bits - out_bits)))
        return ((scale, zero_point, tscale, scale, zero_point),
                FakeTruncAttrs(False, 0, 0, rounding, out_bits))
    out_scale = np.asarray(out_scale, f32)
    with np.errstate(divide="ignore", invalid="ignore"):
        tscale = (f32(2) ** np.round(np.log2(out_scale / scale))).astype(f32)
        out_zp = (zero_point / tscale).astype(f32)
    lo, hi = levels(out_bits, signed, narrow)
    return ((scale, zero_point, tscale, out_scale, out_zp),
            FakeTruncAttrs(True, lo, hi, rounding, out_bits))


def _reference_trunc(node, xs):
    return [fake_trunc(*xs[:6], node.attrs)]


def check_trunc(graph, node) -> Optional[str]:
    bad = _operands(graph, node, ("scale", "zero point", "truncation scale", "output scale",
                                  "output zero point"))
    if bad is None and (node.attrs.rounding not in ROUNDING or node.attrs.lo > node.attrs.hi):
        bad = f"unsupported FakeTrunc {node.attrs}"
    return bad


ir_op("FakeTrunc", reference=_reference_trunc, check=check_trunc)
