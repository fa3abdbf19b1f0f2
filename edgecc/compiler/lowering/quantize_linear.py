"""QuantizeLinear and DequantizeLinear: the float <-> integer boundaries of QDQ models.

Both keep their (constant) scale and zero point as a typed QuantParams in attrs, and the
integer tensor's TensorType carries the same record. passes/fold_qdq.py folds DQ -> op -> Q
into integer ops; the ones left are real conversions with their own C kernels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir import DType, QuantParams, TensorType
from ...ir.quant import dequantize, quantize
from ..registry import ir_op, lowering

QUANT_DTYPES = (DType.INT8, DType.UINT8, DType.INT32, DType.INT16, DType.UINT16)


@dataclass(frozen=True)
class QuantAttrs:
    quant: QuantParams


def qparams_from(ctx, scale, zero_point, axis: int, rank: int, dtype: DType) -> QuantParams:
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    zp = (np.zeros(scale.shape, dtype=np.int64) if zero_point is None
          else np.asarray(zero_point).astype(np.int64).reshape(-1))
    per_axis = scale.size > 1  # a one-element 1-D scale is the same as a per-tensor one
    if per_axis and axis < 0:
        axis += rank
    if zp.size == 1 and scale.size > 1:
        zp = np.repeat(zp, scale.size)
    bits = {DType.INT8: 8, DType.UINT8: 8, DType.INT16: 16, DType.UINT16: 16}.get(dtype, 32)
    return QuantParams(tuple(float(s) for s in scale), tuple(int(z) for z in zp),
                       axis if per_axis else None, bits)


def _broadcast(q: QuantParams, shape):
    """scale and zero point arrays shaped to broadcast against a tensor of ``shape``."""
    s = np.asarray(q.scale, dtype=np.float32)
    z = np.asarray(q.zero_point, dtype=np.int64)
    if q.axis is None:
        return s.reshape(()), z.reshape(())
    view = [1] * len(shape)
    view[q.axis] = -1
    return s.reshape(view), z.reshape(view)


def _ref_quantize(node, xs):
    q = node.attrs.quant
    s, z = _broadcast(q, xs[0].shape)
    dtype = {8: np.int8, 16: np.int16}.get(q.bits, np.int32)
    if min(q.zero_point) >= 0 and node.attrs.unsigned:
        dtype = {8: np.uint8, 16: np.uint16}.get(q.bits, np.uint32)
    return [quantize(xs[0], s, z, dtype)]


def dequantize_constant(quant: QuantParams, value: np.ndarray) -> np.ndarray:
    s, z = _broadcast(quant, value.shape)
    return dequantize(value, s, z)


def _ref_dequantize(node, xs):
    return [dequantize_constant(node.attrs.quant, xs[0])]


@dataclass(frozen=True)
class QuantizeAttrs(QuantAttrs):
    unsigned: bool = False


ir_op("QuantizeLinear", elementwise=False, reference=_ref_quantize)
# No reference for DequantizeLinear: folding DQ(int8 weight) to float would lose the
# quantization that fold_qdq needs; fold_qdq removes what is left.
ir_op("DequantizeLinear", elementwise=False)


def _check_block(ctx):
    if int(ctx.attr("block_size", 0) or 0) != 0:
        raise ctx.error("blocked quantization (block_size > 0) is not supported")


@lowering("QuantizeLinear", const_inputs=(1, 2))
def lower_quantize(ctx, node):
    _check_block(ctx)
    y = node.output[0]
    y_t = ctx.onnx_type(y)
    if y_t.dtype not in QUANT_DTYPES:
        raise ctx.error(f"QuantizeLinear to {y_t.dtype.name.lower()} is not supported")
    x_t = ctx.type(node.input[0])
    q = qparams_from(ctx, ctx.const_input(1, "y_scale"), ctx.const_input(2, "y_zero_point"),
                     int(ctx.attr("axis", 1)), x_t.rank, y_t.dtype)
    ctx.emit("QuantizeLinear", [node.input[0]], [y],
             QuantizeAttrs(q, unsigned=y_t.dtype in (DType.UINT8, DType.UINT16)),
             types=[TensorType(y_t.dtype, y_t.shape, q)])


@lowering("DequantizeLinear", const_inputs=(1, 2))
def lower_dequantize(ctx, node):
    _check_block(ctx)
    x = node.input[0]
    x_t = ctx.type(x)
    if x_t.dtype not in QUANT_DTYPES:
        raise ctx.error(f"DequantizeLinear from {x_t.dtype.name.lower()} is not supported")
    q = qparams_from(ctx, ctx.const_input(1, "x_scale"), ctx.const_input(2, "x_zero_point"),
                     int(ctx.attr("axis", 1)), x_t.rank, x_t.dtype)
    if x_t.quant is None:
        ctx.graph.types[x] = TensorType(x_t.dtype, x_t.shape, q)
    y_t = ctx.onnx_type(node.output[0])
    ctx.emit("DequantizeLinear", [x], [node.output[0]], QuantAttrs(q),
             types=[TensorType(y_t.dtype, y_t.shape)])
