"""IR op FakeQuant: QONNX's Quant and BipolarQuant (what Brevitas' export_qonnx emits around
every quantized layer) on a float32 tensor: quantize to integer levels, clamp, dequantize,
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


def check(graph, node) -> Optional[str]:
    x_t = graph.types[node.inputs[0]]
    if x_t.dtype.name != "FLOAT32":
        return f"FakeQuant of {x_t.dtype.name.lower()}: float32 only"
    for pos, what in ((1, "scale"), (2, "zero point")):
        value = graph.constants.get(node.inputs[pos])
        if value is None:
            return f"the {what} must be a compile-time constant"
        flat = np.asarray(value, np.float64).reshape(-1)
        if not np.all(np.isfinite(flat)) or (pos == 1 and not np.all(flat > 0)):
            return f"the {what} must be finite{' and > 0' if pos == 1 else ''}"
        try:
            if np.broadcast_shapes(np.shape(value), x_t.shape) != tuple(x_t.shape):
                raise ValueError
        except ValueError:
            return f"{what} {list(np.shape(value))} does not broadcast to {list(x_t.shape)}"
    a = node.attrs
    if a.kind not in ("int", "sign1", "bipolar") or a.rounding not in ROUNDING or a.lo > a.hi:
        return f"unsupported FakeQuant {a}"
    return None


ir_op("FakeQuant", reference=_reference, check=check)
