"""QONNX (Brevitas' export_qonnx): Quant and BipolarQuant -> FakeQuant (ir/ops/fake_quant.py),
in the domains qonnx.custom_op.general and finn.custom_op.general (older exports).

A Quant of a constant (a layer's weights) is folded at compile time: its output is the
constant the qonnx executor computes. Scale, zero point and bit width must be compile-time
constants (they are in every export); the bit width an integer from 1 to 32."""
from __future__ import annotations

import numpy as np

from ...ir import DType, TensorType
from ...ir.ops.fake_quant import FakeQuantAttrs, ROUNDING, fake_quant, levels
from ..loader import QONNX_DOMAINS
from ..registry import lowering


def _finish(ctx, node, attrs: FakeQuantAttrs, scale, zero_point):
    x = node.input[0]
    scale = np.asarray(scale, np.float32)
    zero_point = np.asarray(zero_point, np.float32)
    x_t = ctx.type(x)
    if x_t.dtype != DType.FLOAT32:
        raise ctx.error(f"input of {x_t.dtype.name.lower()}: float32 only")
    if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        raise ctx.error("the scale must be finite and > 0")
    if not np.all(np.isfinite(zero_point)):
        raise ctx.error("the zero point must be finite")
    try:
        shape = np.broadcast_shapes(scale.shape, zero_point.shape, x_t.shape)
    except ValueError:
        shape = None
    if shape != tuple(x_t.shape):
        raise ctx.error(f"scale {list(scale.shape)} and zero point {list(zero_point.shape)} "
                        f"do not broadcast to the input {list(x_t.shape)}")
    out_t = TensorType(DType.FLOAT32, x_t.shape)
    if x in ctx.graph.constants:  # weights: folded
        value = fake_quant(ctx.graph.constants[x], scale, zero_point, attrs)
        ctx.graph.add_constant(node.output[0], value.reshape(x_t.shape))
        return
    s = ctx.add_constant(f"{node.output[0]}_scale", scale)
    z = ctx.add_constant(f"{node.output[0]}_zero_point", zero_point)
    ctx.emit("FakeQuant", [x, s, z], [node.output[0]], attrs, types=[out_t])


@lowering(*(f"{d}.Quant" for d in QONNX_DOMAINS), const_inputs=(1, 2, 3))
def lower_quant(ctx, node):
    bits = np.asarray(ctx.const_input(3, "bit width")).reshape(-1)
    if bits.size != 1 or not float(bits[0]).is_integer() or not 1 <= bits[0] <= 32:
        raise ctx.error(f"bit width {bits.tolist()} must be one integer from 1 to 32")
    bits = int(bits[0])
    signed, narrow = bool(ctx.attr("signed", 1)), bool(ctx.attr("narrow", 0))
    rounding = ctx.attr("rounding_mode", "ROUND")
    rounding = (rounding.decode() if isinstance(rounding, bytes) else rounding).upper()
    if rounding not in ROUNDING:
        raise ctx.error(f"rounding mode '{rounding}' (supported: {', '.join(ROUNDING)})")
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
    _finish(ctx, node, FakeQuantAttrs("bipolar", -1, 1, "ROUND", 1),
            ctx.const_input(1, "scale"), np.zeros((), np.float32))
