"""QuantizeLinear and DequantizeLinear: the float <-> integer boundaries of QDQ models.

Both keep their (constant) scale and zero point as a typed QuantParams in attrs, and the
integer tensor's TensorType carries the same record. onnxruntime's com.microsoft variants
(what its quantizer emits for 4- and 16-bit types before opset 21) lower the same way. 4-bit
(INT4 / UINT4) constants, i.e. weights, arrive unpacked as int8 / uint8 values (the front
end), their QuantParams saying 4 bits, so the int8 kernels take them as they are. Other
int4/uint4/int2/uint2 tensors are held one value a byte as int8/uint8 too (lowering/cast.py,
``unpack_sub_byte_types``, which names a QuantizeLinear's type in ``output_dtype``): a
QuantizeLinear to them is one to int8/uint8 whose QuantParams say the bits, then a Clip to
the type's range (the form of passes/quantize_lowbit.py). passes/fold_qdq.py folds
DQ -> op -> Q into integer ops; the ones left are real conversions with their own C kernels.

Float8 and float4 (lowering/cast.py, ``widen_narrow_types``): a QuantizeLinear to them
reaches here with a float32 output and is the scaling y = x / scale (+ zero point, float4),
which the Cast after it rounds (saturating); a DequantizeLinear from them reads the decoded
float32 values: y = (x - zero point) * scale (float8's zero point, 0, is dropped there).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ...ir import DType, QuantParams, TensorType, UnaryAttrs
from ...ir.ops.quantize_linear import QuantAttrs, QuantizeAttrs, _broadcast
from ...ir.quant import dequantize
from ..registry import lowering
from .cast import SUB_BYTE_ONNX

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


def _axis_constant(ctx, value, base: str, what: str) -> str:
    """A float32 constant of ``value`` (a scalar, or per axis: shaped to broadcast against
    input 0 along the node's ``axis``)."""
    v = np.asarray(value, dtype=np.float32)
    shape = ctx.type(ctx.input(0)).shape
    if v.ndim > 1 or v.size == 0:
        raise ctx.error(f"the {what} must be a scalar or a non-empty 1-D tensor, not "
                        f"{list(v.shape)}")
    if v.size == 1:
        return ctx.add_constant(base, v.reshape(()))
    axis = int(ctx.attr("axis", 1))
    axis += len(shape) if axis < 0 else 0
    if not 0 <= axis < len(shape) or v.size != shape[axis]:
        raise ctx.error(f"{v.size} per-axis {what}s for axis {axis} of a {list(shape)} tensor")
    return ctx.add_constant(base, v.reshape((-1,) + (1,) * (len(shape) - axis - 1)))


def _scale_float(ctx, node, scale_op: str) -> None:
    """A float8/float4 QuantizeLinear (``Div``: y = x / scale + zero point) or
    DequantizeLinear (``Mul``: y = (x - zero point) * scale) on float32 values."""
    x, y = node.input[0], node.output[0]
    x_t = ctx.type(x)
    if x_t.dtype != DType.FLOAT32:
        raise ctx.error(f"{node.op_type} of {x_t.dtype.name.lower()} to or from a float8 or "
                        "float4 type is not supported")
    y_t = TensorType(DType.FLOAT32, x_t.shape)
    scale = _axis_constant(ctx, ctx.const_input(1, "scale"), f"{y}_scale", "scale")
    zp = ctx.const_input(2, "zero point", None)
    zp = None if zp is None else _axis_constant(ctx, zp, f"{y}_zero_point", "zero point")
    if scale_op == "Div":
        t = y if zp is None else ctx.temp(f"{y}_scaled", y_t)
        ctx.emit("Div", [x, scale], [t], types=[y_t])
        if zp is not None:
            ctx.emit("Add", [t, zp], [y], types=[y_t])
    else:
        t = x if zp is None else ctx.temp(f"{y}_centered", y_t)
        if zp is not None:
            ctx.emit("Sub", [x, zp], [t], types=[y_t])
        ctx.emit("Mul", [t, scale], [y], types=[y_t])


@lowering("QuantizeLinear", "com.microsoft.QuantizeLinear", const_inputs=(1, 2))
def lower_quantize(ctx, node):
    _check_block(ctx)
    y = node.output[0]
    y_t = ctx.onnx_type(y)
    if y_t.dtype == DType.FLOAT32:  # to float8/float4: the scaling (lowering/cast.py)
        _scale_float(ctx, node, "Div")
        return
    if y_t.dtype not in QUANT_DTYPES:
        raise ctx.error(f"QuantizeLinear to {y_t.dtype.name.lower()} is not supported")
    x_t = ctx.type(node.input[0])
    q = qparams_from(ctx, ctx.const_input(1, "y_scale"), ctx.const_input(2, "y_zero_point"),
                     int(ctx.attr("axis", 1)), x_t.rank, y_t.dtype)
    attrs = QuantizeAttrs(q, unsigned=y_t.dtype in (DType.UINT8, DType.UINT16))
    sub_byte = SUB_BYTE_ONNX.get(ctx.attr("output_dtype", 0))
    if sub_byte is None:
        ctx.emit("QuantizeLinear", [node.input[0]], [y], attrs,
                 types=[TensorType(y_t.dtype, y_t.shape, q)])
        return
    # int4/uint4/int2/uint2 held one value a byte: quantize to int8/uint8, clip to the type
    bits = sub_byte[1]
    q = dataclasses.replace(q, bits=bits)
    lo, hi = ((-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if y_t.dtype == DType.INT8
              else (0, (1 << bits) - 1))
    if any(z < lo or z > hi for z in q.zero_point):
        raise ctx.error(f"zero point outside [{lo}, {hi}]")
    t = ctx.temp(f"{y}_q8", TensorType(y_t.dtype, y_t.shape, q))
    ctx.emit("QuantizeLinear", [node.input[0]], [t], dataclasses.replace(attrs, quant=q))
    ctx.emit("Clip", [t], [y], UnaryAttrs(alpha=lo, beta=hi),
             types=[TensorType(y_t.dtype, y_t.shape, q)])


@lowering("DequantizeLinear", "com.microsoft.DequantizeLinear", const_inputs=(1, 2))
def lower_dequantize(ctx, node):
    _check_block(ctx)
    x = node.input[0]
    x_t = ctx.type(x)
    if x_t.dtype == DType.FLOAT32:  # from float8/float4, decoded (lowering/cast.py)
        _scale_float(ctx, node, "Mul")
        return
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
