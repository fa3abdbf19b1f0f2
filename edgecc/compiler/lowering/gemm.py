"""Gemm and MatMul (numpy-style batch broadcasting, 1-D operands promoted)."""
from __future__ import annotations

from ...ir import DType
from ...ir.ops.gemm import GemmAttrs, MatMulAttrs
from ..registry import lowering

# ONNX Gemm/MatMul element types the C backend has (float16/bfloat16 are not)
_TYPES = (DType.FLOAT32, DType.FLOAT64, DType.INT32, DType.INT64, DType.UINT32, DType.UINT64)


def _check_type(ctx, name: str) -> DType:
    dtype = ctx.type(name).dtype
    if dtype not in _TYPES:
        raise ctx.error(f"{ctx.node.op_type} on {dtype.name.lower()} is not supported")
    return dtype


@lowering("Gemm")
def lower_gemm(ctx, node):
    dtype = _check_type(ctx, node.input[0])
    attrs = GemmAttrs(bool(ctx.attr("transA", 0)), bool(ctx.attr("transB", 0)),
                      float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0)))
    if not dtype.is_float and (attrs.alpha != 1.0 or attrs.beta not in (0.0, 1.0)):
        raise ctx.error("integer Gemm supports only alpha=1 and beta in {0, 1}")
    ctx.emit("Gemm", list(node.input[:3]), [node.output[0]], attrs)


@lowering("MatMul")
def lower_matmul(ctx, node):
    _check_type(ctx, node.input[0])
    ctx.emit("MatMul", [node.input[0], node.input[1]], [node.output[0]], MatMulAttrs())
