"""QuantizeLinear and DequantizeLinear: the float <-> integer boundaries of QDQ models.

Both keep their (constant) scale and zero point as a typed QuantParams in attrs, and the
integer tensor's TensorType carries the same record. onnxruntime's com.microsoft variants
(what its quantizer emits for 4- and 16-bit types before opset 21) lower the same way. 4-bit
(INT4 / UINT4) constants, i.e. weights, arrive unpacked as int8 / uint8 values (the front
end), their QuantParams saying 4 bits, so the int8 kernels take them as they are; 4-bit
activations are refused (not supported yet). passes/fold_qdq.py folds DQ -> op -> Q
into integer ops; the ones left are real conversions with their own C kernels.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ...ir import DType, QuantParams, TensorType
from ...ir.ops.quantize_linear import QuantAttrs, QuantizeAttrs, _broadcast
from ...ir.quant import dequantize
from ..registry import lowering

QUANT_DTYPES = (DType.INT8, DType.UINT8, DType.INT32, DType.INT16, DType.UINT16)


def qparams_from(ctx, scale, zero_point, axis: int, rank: int, dtype: DType) -> QuantParams:
    scale = np.asarray(scale, dtype=np.float64)
    if scale.ndim > 1 or scale.size == 0:
        raise ctx.error(f"the scale must be a scalar or a non-empty 1-D tensor, not "
                        f"{list(scale.shape)}")
    if zero_point is not None and np.size(zero_point) != scale.size:
        raise ctx.error(f"the zero point's shape {list(np.shape(zero_point))} differs from "
                        f"the scale's {list(scale.shape)}")
    scale = scale.reshape(-1)
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


def dequantize_constant(quant: QuantParams, value: np.ndarray) -> np.ndarray:
    s, z = _broadcast(quant, value.shape)
    return dequantize(value, s, z)


def _ref_dequantize(node, xs):
    return [dequantize_constant(node.attrs.quant, xs[0])]


def _check_block(ctx):
    if int(ctx.attr("block_size", 0) or 0) != 0:
        raise ctx.error("blocked quantization (block_size > 0) is not supported")


@lowering("QuantizeLinear", "com.microsoft.QuantizeLinear", const_inputs=(1, 2))
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


@lowering("DequantizeLinear", "com.microsoft.DequantizeLinear", const_inputs=(1, 2))
def lower_dequantize(ctx, node):
    _check_block(ctx)
    x = node.input[0]
    x_t = ctx.type(x)
    if x_t.dtype not in QUANT_DTYPES:
        raise ctx.error(f"DequantizeLinear from {x_t.dtype.name.lower()} is not supported")
    q = qparams_from(ctx, ctx.const_input(1, "x_scale"), ctx.const_input(2, "x_zero_point"),
                     int(ctx.attr("axis", 1)), x_t.rank, x_t.dtype)
    if x in ctx.sub_byte:  # 4-bit weights, held as int8 / uint8 values: record their width
        q = dataclasses.replace(q, bits=ctx.sub_byte[x])
    if x_t.quant is None:
        ctx.graph.types[x] = TensorType(x_t.dtype, x_t.shape, q)
    y_t = ctx.onnx_type(node.output[0])
    ctx.emit("DequantizeLinear", [x], [node.output[0]], QuantAttrs(q),
             types=[TensorType(y_t.dtype, y_t.shape)])
