"""Gemm and MatMul (numpy-style batch broadcasting, 1-D operands promoted)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...ir import Activation, DType, Graph, Node
from ..registry import ir_op, lowering


@dataclass(frozen=True)
class GemmAttrs:
    """Y = alpha * op(A) @ op(B) + beta * C, op = transpose when trans_a/trans_b."""

    trans_a: bool = False
    trans_b: bool = False
    alpha: float = 1.0
    beta: float = 1.0
    activation: Optional[Activation] = None


@dataclass(frozen=True)
class MatMulAttrs:
    activation: Optional[Activation] = None


def _gemm_macs(graph: Graph, node: Node) -> int:
    a = graph.types[node.inputs[0]].shape
    y = graph.types[node.outputs[0]].shape
    k = a[0] if node.attrs.trans_a else a[1]
    return int(np.prod(y)) * int(k)


def _matmul_macs(graph: Graph, node: Node) -> int:
    a = graph.types[node.inputs[0]].shape
    y = graph.types[node.outputs[0]].shape
    return int(np.prod(y)) * int(a[-1])


ir_op("Gemm", macs=_gemm_macs)
ir_op("MatMul", macs=_matmul_macs,
      reference=lambda n, xs: [np.matmul(xs[0], xs[1])] if n.attrs.activation is None else None)


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
