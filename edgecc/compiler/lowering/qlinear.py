"""QOperator-format quantized ONNX ops, lowered to the QDQ form of the same computation.

onnxruntime's quantizer (QuantFormat.QOperator) writes QLinearConv, QLinearMatMul and the
com.microsoft ops QLinearAdd/Mul/AveragePool/GlobalAveragePool/Concat/Sigmoid/LeakyRelu/
Softmax and QGemm. Each lowers to what a QDQ model holds for it, e.g.

    y_q = QLinearConv(x_q, sx, zx, w_q, sw, zw, sy, zy, b_q)
 -> yf = Conv(DequantizeLinear(x_q), DequantizeLinear(w_q), DequantizeLinear(b_q))
    y_q = QuantizeLinear(yf)

with the float op emitted as its float lowering does (same attrs records) and the
quantization in the DQ/Q attrs and the integer tensors' types; passes/fold_qdq.py then folds
it into an integer op, so QDQ and QOperator models share one code path. Bias scales (int32,
zero point 0): QLinearConv sx * sw[c]; QGemm alpha * sa * sb[c] (C's scale is
alpha / beta * sa * sb with beta = 1).

ConvInteger / MatMulInteger give the raw int32 accumulator sum (x - zx) * (w - zw): Cast to
int32, subtract the zero points, Conv / MatMul on int32 (exact: the generic kernels
accumulate in the output type). DynamicQuantizeLinear needs a compile-time constant input
(the loader folds it; it reaches here only when it feeds a graph output).
"""
from __future__ import annotations

import numpy as np

from ...ir import DType, QuantParams, TensorType, UnaryAttrs
from ...ir.ops.cast import CastAttrs
from ..registry import lowering
from .conv import ConvAttrs, explicit_pads
from .gemm import GemmAttrs, MatMulAttrs
from .movement import ConcatAttrs, norm_axis
from .pool import PoolAttrs
from .quantize_linear import QuantAttrs, QuantizeAttrs
from .softmax import SoftmaxAttrs

MS = "com.microsoft."
INT8_TYPES = (DType.INT8, DType.UINT8)


def quant_params(scale, zero_point, dtype: DType, axis=None) -> QuantParams:
    """QuantParams from constant scale and zero point; per channel along ``axis`` when the
    scale has more than one element."""
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    zp = (np.zeros(scale.shape, np.int64) if zero_point is None
          else np.asarray(zero_point).astype(np.int64).reshape(-1))
    if zp.size == 1 and scale.size > 1:
        zp = np.repeat(zp, scale.size)
    per_axis = scale.size > 1 or zp.size > 1
    if per_axis and scale.size == 1:
        scale = np.repeat(scale, zp.size)
    bits = 8 if dtype in INT8_TYPES else 32
    return QuantParams(tuple(float(s) for s in scale), tuple(int(z) for z in zp),
                       axis if per_axis else None, bits)


def input_params(ctx, data: int, scale: int, zp: int, axis=None) -> QuantParams:
    """QuantParams of the integer input at position ``data`` (scale, zero point inputs)."""
    dtype = ctx.type(ctx.input(data)).dtype
    q = quant_params(ctx.const_input(scale, "scale"), ctx.const_input(zp, "zero point"),
                     dtype, axis)
    if q.axis is None and len(q.scale) != 1:
        raise ctx.error(f"input {data}: expected a per-tensor scale and zero point")
    return q


def dequantize(ctx, pos: int, q: QuantParams) -> str:
    """DequantizeLinear of input ``pos`` into a fresh float tensor; returns its name."""
    name = ctx.input(pos)
    t = ctx.type(name)
    if t.dtype not in INT8_TYPES + (DType.INT32,):
        raise ctx.error(f"input {pos} ('{name}') is {t.dtype.name.lower()}, "
                        "expected int8, uint8 or int32")
    if q.axis is not None and (q.axis >= t.rank or t.shape[q.axis] != len(q.scale)):
        raise ctx.error(f"input {pos} ('{name}'): {len(q.scale)} scales do not match "
                        f"its shape {list(t.shape)}")
    if t.quant is None:
        ctx.graph.types[name] = TensorType(t.dtype, t.shape, q)
    out = ctx.temp(f"{name}_dq", TensorType(DType.FLOAT32, t.shape))
    ctx.emit("DequantizeLinear", [name], [out], QuantAttrs(q), types=[ctx.type(out)])
    return out


def output_params(ctx, scale: int, zp: int) -> QuantParams:
    out_t = ctx.type(ctx.node.output[0])
    if out_t.dtype not in INT8_TYPES:
        raise ctx.error(f"output is {out_t.dtype.name.lower()}, expected int8 or uint8")
    q = quant_params(ctx.const_input(scale, "output scale"),
                     ctx.const_input(zp, "output zero point"), out_t.dtype)
    if q.axis is not None:
        raise ctx.error("expected a per-tensor output scale and zero point")
    return q


def float_op_then_quantize(ctx, op: str, inputs, attrs, q_out: QuantParams, shape=None):
    """yf = op(inputs) (float), then output 0 = QuantizeLinear(yf) with ``q_out``."""
    y = ctx.node.output[0]
    y_t = ctx.type(y)
    shape = y_t.shape if shape is None else tuple(shape)
    yf = ctx.temp(f"{y}_f", TensorType(DType.FLOAT32, shape))
    ctx.emit(op, inputs, [yf], attrs, types=[ctx.type(yf)])
    ctx.emit("QuantizeLinear", [yf], [y], QuantizeAttrs(q_out, unsigned=y_t.dtype == DType.UINT8),
             types=[TensorType(y_t.dtype, shape, q_out)])


def bias_params(s_in: float, s_w, axis_if_channel: int, alpha=1.0) -> QuantParams:
    """int32 bias quantization: scale alpha * s_in * s_w[c], zero point 0."""
    s = alpha * s_in * np.asarray(s_w, dtype=np.float64)
    return QuantParams(tuple(float(v) for v in s), (0,) * s.size,
                       axis_if_channel if s.size > 1 else None, 32)


def conv_attrs(ctx, x_t: TensorType, w_t: TensorType, y_t: TensorType) -> ConvAttrs:
    """The ConvAttrs the float Conv lowering would build for this node's attributes."""
    nsp = x_t.rank - 2
    if nsp < 1 or nsp > 3:
        raise ctx.error(f"{ctx.node.op_type} with {nsp} spatial dims is not supported (1 to 3)")
    kernel = tuple(int(k) for k in ctx.attr("kernel_shape", w_t.shape[2:]))
    strides = tuple(int(s) for s in ctx.attr("strides", [1] * nsp))
    dilations = tuple(int(d) for d in ctx.attr("dilations", [1] * nsp))
    pads = explicit_pads(ctx, x_t.shape[2:], y_t.shape[2:], kernel, strides, dilations)
    return ConvAttrs(kernel, strides, pads, dilations, int(ctx.attr("group", 1)))


def pool_spatial_dims(ctx, x_t: TensorType) -> int:
    if ctx.attr("channels_last", 0):
        raise ctx.error("channels_last=1 (NHWC) is not supported")
    if not 1 <= x_t.rank - 2 <= 3:
        raise ctx.error(f"{x_t.rank - 2} spatial dims are not supported (1 to 3)")
    return x_t.rank - 2


# -- QLinearConv, QLinearMatMul, QGemm ------------------------------------------------------

@lowering("QLinearConv", const_inputs=(1, 2, 4, 5, 6, 7))
def lower_qlinear_conv(ctx, node):
    qx = input_params(ctx, 0, 1, 2)
    qw = input_params(ctx, 3, 4, 5, axis=0)
    qy = output_params(ctx, 6, 7)
    inputs = [dequantize(ctx, 0, qx), dequantize(ctx, 3, qw)]
    if len(node.input) > 8 and node.input[8]:
        inputs.append(dequantize(ctx, 8, bias_params(qx.scale[0], qw.scale, 0)))
    attrs = conv_attrs(ctx, ctx.type(node.input[0]), ctx.type(node.input[3]),
                       ctx.type(node.output[0]))
    float_op_then_quantize(ctx, "Conv", inputs, attrs, qy)


@lowering("QLinearMatMul", const_inputs=(1, 2, 4, 5, 6, 7))
def lower_qlinear_matmul(ctx, node):
    qa = input_params(ctx, 0, 1, 2)
    qb = input_params(ctx, 3, 4, 5, axis=max(ctx.type(node.input[3]).rank - 1, 0))
    qy = output_params(ctx, 6, 7)
    inputs = [dequantize(ctx, 0, qa), dequantize(ctx, 3, qb)]
    float_op_then_quantize(ctx, "MatMul", inputs, MatMulAttrs(), qy)


@lowering(MS + "QGemm", const_inputs=(1, 2, 4, 5, 7, 8))
def lower_qgemm(ctx, node):
    trans_a, trans_b = bool(ctx.attr("transA", 0)), bool(ctx.attr("transB", 0))
    alpha = float(ctx.attr("alpha", 1.0))
    qa = input_params(ctx, 0, 1, 2)
    qb = input_params(ctx, 3, 4, 5, axis=0 if trans_b else 1)
    inputs = [dequantize(ctx, 0, qa), dequantize(ctx, 3, qb)]
    a_t, b_t = ctx.type(node.input[0]), ctx.type(node.input[3])
    shape = (a_t.shape[1] if trans_a else a_t.shape[0], b_t.shape[0] if trans_b else b_t.shape[1])
    if len(node.input) > 6 and node.input[6]:
        c_t = ctx.type(node.input[6])
        channel_axis = max(c_t.rank - 1, 0)
        if len(qb.scale) > 1 and (c_t.rank == 0 or c_t.shape[-1] != len(qb.scale)):
            raise ctx.error("per-column B needs a bias C with one value per column")
        inputs.append(dequantize(ctx, 6, bias_params(qa.scale[0], qb.scale, channel_axis,
                                                     alpha)))
    attrs = GemmAttrs(trans_a, trans_b, alpha, 1.0)
    if len(node.input) > 7 and node.input[7]:
        float_op_then_quantize(ctx, "Gemm", inputs, attrs, output_params(ctx, 7, 8), shape)
    else:  # no y_scale: the output is float
        ctx.emit("Gemm", inputs, [node.output[0]], attrs,
                 types=[TensorType(DType.FLOAT32, shape)])


# -- elementwise and pooling (com.microsoft) ------------------------------------------------

@lowering(MS + "QLinearAdd", MS + "QLinearMul", const_inputs=(1, 2, 4, 5, 6, 7))
def lower_qlinear_binary(ctx, node):
    qa, qb = input_params(ctx, 0, 1, 2), input_params(ctx, 3, 4, 5)
    qy = output_params(ctx, 6, 7)
    a_t, b_t = ctx.type(node.input[0]), ctx.type(node.input[3])
    shape = np.broadcast_shapes(a_t.shape, b_t.shape)
    inputs = [dequantize(ctx, 0, qa), dequantize(ctx, 3, qb)]
    float_op_then_quantize(ctx, node.op_type[len("QLinear"):], inputs, None, qy, shape)


def _unary(ctx, op: str, attrs, shape=None):
    qx, qy = input_params(ctx, 0, 1, 2), output_params(ctx, 3, 4)
    float_op_then_quantize(ctx, op, [dequantize(ctx, 0, qx)], attrs, qy, shape)


@lowering(MS + "QLinearSigmoid", const_inputs=(1, 2, 3, 4))
def lower_qlinear_sigmoid(ctx, node):
    _unary(ctx, "Sigmoid", UnaryAttrs(), ctx.type(node.input[0]).shape)


@lowering(MS + "QLinearLeakyRelu", const_inputs=(1, 2, 3, 4))
def lower_qlinear_leaky_relu(ctx, node):
    _unary(ctx, "LeakyRelu", UnaryAttrs(alpha=float(ctx.attr("alpha", 0.01))),
           ctx.type(node.input[0]).shape)


@lowering(MS + "QLinearSoftmax", const_inputs=(1, 2, 3, 4))
def lower_qlinear_softmax(ctx, node):
    """``opset`` (required) is the ONNX opset the float Softmax had: before 13 it normalizes
    over all the axes from ``axis`` on, from 13 over ``axis`` alone."""
    x_t = ctx.type(node.input[0])
    rank = x_t.rank
    axis = int(ctx.attr("axis", -1))
    if rank == 0 or not -rank <= axis < rank:
        raise ctx.error(f"axis {axis} is out of range for rank {rank}")
    axis += rank if axis < 0 else 0
    end_axis = axis + 1 if int(ctx.attr("opset", 13)) >= 13 else rank
    _unary(ctx, "Softmax", SoftmaxAttrs(axis, end_axis), x_t.shape)


@lowering(MS + "QLinearGlobalAveragePool", const_inputs=(1, 2, 3, 4))
def lower_qlinear_global_average_pool(ctx, node):
    x_t = ctx.type(node.input[0])
    nsp = pool_spatial_dims(ctx, x_t)
    attrs = PoolAttrs(tuple(x_t.shape[2:]), (1,) * nsp, (0,) * (2 * nsp), (1,) * nsp)
    _unary(ctx, "AveragePool", attrs, x_t.shape[:2] + (1,) * nsp)


@lowering(MS + "QLinearAveragePool", const_inputs=(1, 2, 3, 4))
def lower_qlinear_average_pool(ctx, node):
    x_t, y_t = ctx.type(node.input[0]), ctx.type(node.output[0])
    nsp = pool_spatial_dims(ctx, x_t)
    if ctx.attr("kernel_shape") is None:
        raise ctx.error("kernel_shape is required")
    kernel = tuple(int(k) for k in ctx.attr("kernel_shape"))
    strides = tuple(int(s) for s in ctx.attr("strides", [1] * nsp))
    dilations = (1,) * nsp
    pads = explicit_pads(ctx, x_t.shape[2:], y_t.shape[2:], kernel, strides, dilations)
    attrs = PoolAttrs(kernel, strides, pads, dilations,
                      count_include_pad=bool(ctx.attr("count_include_pad", 0)))
    _unary(ctx, "AveragePool", attrs)


@lowering(MS + "QLinearConcat", const_inputs=(0, 1))
def lower_qlinear_concat(ctx, node):
    """Inputs: Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) per concatenated X."""
    if len(node.input) < 5 or (len(node.input) - 2) % 3:
        raise ctx.error("expected Y_scale, Y_zero_point and (X, scale, zero point) triples")
    qy = output_params(ctx, 0, 1)
    data = range(2, len(node.input), 3)
    x_types = [ctx.type(node.input[k]) for k in data]
    axis = norm_axis(ctx, ctx.attr("axis", 1), x_types[0].rank)
    inputs = [dequantize(ctx, k, input_params(ctx, k, k + 1, k + 2)) for k in data]
    shape = list(x_types[0].shape)
    shape[axis] = sum(t.shape[axis] for t in x_types)
    float_op_then_quantize(ctx, "Concat", inputs, ConcatAttrs(axis), qy, shape)


# -- ConvInteger, MatMulInteger, DynamicQuantizeLinear --------------------------------------

def _int32_minus_zero_point(ctx, pos: int, zp_pos: int, zp_shape) -> str:
    """Input ``pos`` as int32 minus its (constant) zero point, reshaped to ``zp_shape``."""
    name = ctx.input(pos)
    t = ctx.type(name)
    if t.dtype not in INT8_TYPES:
        raise ctx.error(f"input {pos} ('{name}') is {t.dtype.name.lower()}, "
                        "expected int8 or uint8")
    zp = ctx.const_input(zp_pos, "zero point", np.zeros((), np.int32)).astype(np.int32)
    zp = zp.reshape(zp_shape if zp.size > 1 else ())
    value = ctx.const(name)
    if value is not None:
        return ctx.add_constant(f"{name}_i32", value.astype(np.int32) - zp)
    cast = ctx.temp(f"{name}_i32", TensorType(DType.INT32, t.shape))
    ctx.emit("Cast", [name], [cast], CastAttrs(DType.INT32), types=[ctx.type(cast)])
    if not zp.any():
        return cast
    out = ctx.temp(f"{name}_centered", TensorType(DType.INT32, t.shape))
    ctx.emit("Sub", [cast, ctx.add_constant(f"{name}_zp", zp)], [out], types=[ctx.type(out)])
    return out


@lowering("ConvInteger", const_inputs=(2, 3))
def lower_conv_integer(ctx, node):
    x_t, w_t, y_t = (ctx.type(n) for n in (node.input[0], node.input[1], node.output[0]))
    attrs = conv_attrs(ctx, x_t, w_t, y_t)
    x = _int32_minus_zero_point(ctx, 0, 2, (1, -1) + (1,) * (x_t.rank - 2))
    w = _int32_minus_zero_point(ctx, 1, 3, (-1,) + (1,) * (w_t.rank - 1))
    ctx.emit("Conv", [x, w], [node.output[0]], attrs, types=[TensorType(DType.INT32, y_t.shape)])


@lowering("MatMulInteger", const_inputs=(2, 3))
def lower_matmul_integer(ctx, node):
    """a_zero_point may be per row of A (shape [M]), b_zero_point per column of B ([N])."""
    a = _int32_minus_zero_point(ctx, 0, 2, (-1, 1))
    b = _int32_minus_zero_point(ctx, 1, 3, (-1,))
    y_t = ctx.type(node.output[0])
    ctx.emit("MatMul", [a, b], [node.output[0]], MatMulAttrs(),
             types=[TensorType(DType.INT32, y_t.shape)])


@lowering("DynamicQuantizeLinear", const_inputs=(0,))
def lower_dynamic_quantize_linear(ctx, node):
    """y = saturate(round(x / s) + z) with s = (max(x, 0) - min(x, 0)) / 255 and
    z = saturate(round(-min(x, 0) / s)) (uint8, ties to even), computed at compile time."""
    x = ctx.const_input(0, "x").astype(np.float32)
    lo = np.float32(min(float(x.min(initial=0.0)), 0.0))
    hi = np.float32(max(float(x.max(initial=0.0)), 0.0))
    scale = np.float32((hi - lo) / np.float32(255.0))
    safe = scale if scale != 0 else np.float32(1.0)
    zp = np.uint8(np.clip(np.rint(-lo / safe), 0, 255))
    y = np.clip(np.rint(x / safe) + zp, 0, 255).astype(np.uint8)
    for out, value in zip(node.output, (y, np.array(scale, np.float32), np.array(zp))):
        if out:
            ctx.graph.add_constant(out, value)
