"""MaxPool, AveragePool and their Global forms (lowered to the same IR ops, full-size kernel).

Pads are explicit after lowering (auto_pad resolved). The output shape comes from onnx shape
inference, so ceil_mode needs no attribute here: the kernel clips each window to the padded
input ``[-pad_begin, size + pad_end)``, which is what ceil mode's extra windows need.

AveragePool divisor (as in onnx/reference/ops/op_pool_common.py and onnxruntime):
count_include_pad=0 counts the taps inside the input; count_include_pad=1 counts the taps
inside the explicitly padded input (never the taps ceil mode adds past the end pad).
"""
from __future__ import annotations

from ...ir import DType, TensorType
from ...ir.ops.pool import PoolAttrs
from ..registry import lowering
from .conv import explicit_pads


def _check_input(ctx, x_t: TensorType, op: str) -> int:
    nsp = x_t.rank - 2
    if nsp < 1 or nsp > 3:
        raise ctx.error(f"{op} with {nsp} spatial dims is not supported (1 to 3)")
    if op.endswith("AveragePool") and not x_t.dtype.is_float:
        raise ctx.error(f"{op} on {x_t.dtype.name.lower()} is not supported")
    if x_t.dtype == DType.BOOL:
        raise ctx.error(f"{op} on bool is not supported")
    return nsp


@lowering("MaxPool", "AveragePool")
def lower_pool(ctx, node):
    x_t = ctx.type(node.input[0])
    y_t = ctx.type(node.output[0])
    nsp = _check_input(ctx, x_t, node.op_type)
    if ctx.attr("kernel_shape") is None:
        raise ctx.error("kernel_shape is required")
    kernel = tuple(int(k) for k in ctx.attr("kernel_shape"))
    strides = tuple(int(s) for s in ctx.attr("strides", [1] * nsp))
    dilations = tuple(int(d) for d in ctx.attr("dilations", [1] * nsp))
    pads = explicit_pads(ctx, x_t.shape[2:], y_t.shape[2:], kernel, strides, dilations)
    outputs = [node.output[0]]
    if node.op_type == "MaxPool":
        if len(node.output) > 1 and node.output[1]:
            outputs.append(node.output[1])
        attrs = PoolAttrs(kernel, strides, pads, dilations,
                          storage_order=int(ctx.attr("storage_order", 0)))
    else:
        attrs = PoolAttrs(kernel, strides, pads, dilations,
                          count_include_pad=bool(ctx.attr("count_include_pad", 0)))
    ctx.emit(node.op_type, [node.input[0]], outputs, attrs)


@lowering("GlobalMaxPool", "GlobalAveragePool")
def lower_global_pool(ctx, node):
    x_t = ctx.type(node.input[0])
    op = node.op_type[len("Global"):]
    nsp = _check_input(ctx, x_t, node.op_type)
    kernel = tuple(x_t.shape[2:])
    out_t = x_t.with_shape(x_t.shape[:2] + (1,) * nsp)
    attrs = PoolAttrs(kernel, (1,) * nsp, (0,) * (2 * nsp), (1,) * nsp)
    ctx.emit(op, [node.input[0]], [node.output[0]], attrs, types=[out_t])
