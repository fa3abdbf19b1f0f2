"""QONNX (Brevitas' export_qonnx): Quant, BipolarQuant and Trunc, in the domains
qonnx.custom_op.general and finn.custom_op.general (older exports).

A Quant rounding half to even with zero point 0 and levels inside int8/uint8 takes the integer
form (``_integer_form``: QuantizeLinear -> Clip to its levels -> DequantizeLinear; of a
constant, its levels -> DequantizeLinear), which fold_qdq turns into integer layers. The other
quantizers lower to FakeQuant / FakeTrunc (ir/ops/fake_quant.py), folded at compile time for a
constant. Scale, zero point and bit widths must be compile-time constants (they are in every
export); a bit width an integer from 1 to 32."""
from __future__ import annotations

import numpy as np

from ...ir import DType, QuantParams, TensorType, UnaryAttrs
from ...ir.ops.quantize_linear import QuantAttrs, QuantizeAttrs
from ...ir.ops.fake_quant import (FakeQuantAttrs, ROUNDING, fake_quant, fake_trunc, levels,
                                  trunc_constants)
from ..loader import QONNX_DOMAINS
from ..registry import lowering


def _rounding(ctx, default: str) -> str:
    rounding = ctx.attr("rounding_mode", default).upper()
    if rounding not in ROUNDING:
        raise ctx.error(f"rounding mode '{rounding}' (supported: {', '.join(ROUNDING)})")
    return rounding


def _require(ctx, node, count: int, names: str) -> None:
    """The node's first ``count`` inputs are given (QONNX has no optional ones there)."""
    if len(node.input) < count or not all(node.input[:count]):
        raise ctx.error(f"{node.op_type} needs its {count} inputs ({names})")


def _bits(ctx, pos: int, what: str) -> int:
    bits = np.asarray(ctx.const_input(pos, what)).reshape(-1)
    if bits.size != 1 or not float(bits[0]).is_integer() or not 1 <= bits[0] <= 32:
        raise ctx.error(f"{what} {bits.tolist()} must be one integer from 1 to 32")
    return int(bits[0])


def _operands(ctx, x_t, consts) -> None:
    """x float32; the constants (scales first, as named by ``_CONST_NAMES``) finite, the
    scales > 0, all broadcasting to x."""
    if x_t.dtype != DType.FLOAT32:
        raise ctx.error(f"input of {x_t.dtype.name.lower()}: float32 only")
    if not all(np.all(np.isfinite(c)) for c in consts):
        raise ctx.error("scales and zero points must be finite")
    if not all(np.all(c > 0) for c, name in zip(consts, _CONST_NAMES) if name.endswith("scale")):
        raise ctx.error("scales must be > 0")
    try:
        shape = np.broadcast_shapes(*(c.shape for c in consts), x_t.shape)
    except ValueError:
        shape = None
    if shape != tuple(x_t.shape):
        raise ctx.error(f"scale {list(consts[0].shape)} or zero point {list(consts[1].shape)} "
                        f"does not broadcast to the input {list(x_t.shape)}")


_CONST_NAMES = ("scale", "zero_point", "tscale", "out_scale", "out_zero_point")


def _fold_or_emit(ctx, node, op: str, attrs, consts, fold) -> None:
    """Of a constant: its value ``fold(x, *consts, attrs)``; else the IR node ``op``."""
    x, out = node.input[0], node.output[0]
    x_t = ctx.type(x)
    if x in ctx.graph.constants:
        ctx.graph.add_constant(out, fold(ctx.graph.constants[x], *consts, attrs).reshape(x_t.shape))
        return
    names = [ctx.add_constant(f"{out}_{k}", c) for k, c in zip(_CONST_NAMES, consts)]
    ctx.emit(op, [x, *names], [out], attrs, types=[TensorType(DType.FLOAT32, x_t.shape)])


def _finish(ctx, node, attrs: FakeQuantAttrs, scale, zero_point):
    scale = np.asarray(scale, np.float32)
    zero_point = np.asarray(zero_point, np.float32)
    x_t = ctx.type(node.input[0])
    _operands(ctx, x_t, (scale, zero_point))
    if not _integer_form(ctx, node, attrs, scale, zero_point, x_t):
        _fold_or_emit(ctx, node, "FakeQuant", attrs, (scale, zero_point), fake_quant)


def _integer_form(ctx, node, attrs, scale, zero_point, x_t) -> bool:
    """Emit the quantizer as QuantizeLinear [-> Clip to its levels] -> DequantizeLinear (a
    constant: its integer levels -> DequantizeLinear), the form the integer path (fold_qdq)
    takes, where that is the same computation: an integer quantizer rounding half to even,
    zero point 0, levels inside int8 (signed) or uint8 (held as int8 with zero point -128, as
    TFLite does, so every target's int8 kernels take them), scale per tensor (or, for a
    constant, per one axis). Q(x) = saturate(rnd(x / s) + zp), then the clamp to [lo + zp,
    hi + zp], equals FakeQuant's rnd(clamp(x / s, lo, hi)) shifted by the integer zp
    (rounding is monotone, the bounds are integers); only NaN differs (FakeQuant: NaN,
    QuantizeLinear: the zero point). Returns False (nothing emitted) otherwise."""
    x = node.input[0]
    signed = attrs.lo < 0
    if (attrs.kind != "int" or attrs.rounding not in ("ROUND", "HALF_EVEN")
            or np.any(zero_point != 0) or attrs.lo < (-128 if signed else 0)
            or attrs.hi > (127 if signed else 255)):
        return False
    axes = [len(x_t.shape) - scale.ndim + i for i, d in enumerate(scale.shape) if d != 1]
    constant = x in ctx.graph.constants
    if scale.size > 1 and (not constant or len(axes) != 1):
        return False
    if constant and not np.all(np.isfinite(ctx.graph.constants[x])):
        return False  # FakeQuant's folding keeps qonnx's NaN / +-Inf semantics
    dtype, zp = DType.INT8, 0 if signed else -128  # unsigned levels as int8 - 128 (TFLite's)
    lo, hi = attrs.lo + zp, attrs.hi + zp
    q = QuantParams(tuple(float(v) for v in scale.reshape(-1)), (zp,) * scale.size,
                    axes[0] if scale.size > 1 else None, attrs.bits)
    out = node.output[0]
    if constant:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            levels_ = np.round(np.clip(ctx.graph.constants[x].astype(np.float32) / scale,
                                       attrs.lo, attrs.hi)) + zp
        xq = ctx.add_constant(f"{out}_levels", levels_.astype(dtype.np_dtype))
        ctx.graph.types[xq] = TensorType(dtype, x_t.shape, q)
    else:
        xq = ctx.temp(f"{out}_q", TensorType(dtype, x_t.shape, q))
        ctx.emit("QuantizeLinear", [x], [xq], QuantizeAttrs(q))
        if (lo, hi) != dtype.int_range:
            clipped = ctx.temp(f"{out}_levels", TensorType(dtype, x_t.shape, q))
            ctx.emit("Clip", [xq], [clipped], UnaryAttrs(alpha=lo, beta=hi))
            xq = clipped
    ctx.emit("DequantizeLinear", [xq], [out], QuantAttrs(q),
             types=[TensorType(DType.FLOAT32, x_t.shape)])
    return True


@lowering(*(f"{d}.Quant" for d in QONNX_DOMAINS), const_inputs=(1, 2, 3))
def lower_quant(ctx, node):
    _require(ctx, node, 4, "x, scale, zero point, bit width")
    bits = _bits(ctx, 3, "bit width")
    signed, narrow = bool(ctx.attr("signed", 1)), bool(ctx.attr("narrow", 0))
    rounding = _rounding(ctx, "ROUND")
    if bits == 1 and signed:
        attrs = FakeQuantAttrs("sign1", -1, 1, rounding, 1)
    else:
        lo, hi = levels(bits, signed, narrow)
        if lo > hi:
            raise ctx.error(f"{bits}-bit {'signed' if signed else 'unsigned'} narrow range "
                            "has no levels")
        attrs = FakeQuantAttrs("int", lo, hi, rounding, bits)
    _finish(ctx, node, attrs, ctx.const_input(1, "scale"), ctx.const_input(2, "zero point"))


@lowering(*(f"{d}.BipolarQuant" for d in QONNX_DOMAINS), const_inputs=(1,))
def lower_bipolar_quant(ctx, node):
    _require(ctx, node, 2, "x, scale")
    _finish(ctx, node, FakeQuantAttrs("bipolar", -1, 1, "ROUND", 1),
            ctx.const_input(1, "scale"), np.zeros((), np.float32))


@lowering(*(f"{d}.Trunc" for d in QONNX_DOMAINS), const_inputs=(1, 2, 3, 4, 5))
def lower_trunc(ctx, node):
    """Trunc v2 (6 inputs: x, scale, zero point, input bits, output scale, output bits; the
    truncation scale 2^round(log2(output scale / scale)) and the output zero point computed
    here in float32 as qonnx does) or v1 (5 inputs: x, scale, zero point, input bits, output
    bits; truncation scale 2^(input bits - output bits), no clamp, the input's scale)."""
    _require(ctx, node, 5, "x, scale, zero point, input bit width, then the output bit width "
             "(v1) or output scale and bit width (v2)")
    x_t = ctx.type(node.input[0])
    v2 = len(node.input) >= 6 and bool(node.input[5])
    consts, attrs = trunc_constants(
        ctx.const_input(1, "scale"), ctx.const_input(2, "zero point"),
        _bits(ctx, 3, "input bit width"), _bits(ctx, 5 if v2 else 4, "output bit width"),
        ctx.const_input(4, "output scale") if v2 else None, bool(ctx.attr("signed", 1)),
        bool(ctx.attr("narrow", 0)), _rounding(ctx, "FLOOR"))
    _operands(ctx, x_t, consts)
    _fold_or_emit(ctx, node, "FakeTrunc", attrs, consts, fake_trunc)
