"""ONNX lowerings: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss.

Each lowers to its IR op (ir/ops/loss.py) with the reduction and ignore_index resolved; the
kernel computes the loss, and for SoftmaxCrossEntropyLoss the optional log_prob output, in
one pass over the [N, C, d1...] scores.
"""
from __future__ import annotations

from ...ir import DType
from ...ir.ops.loss import LossAttrs
from ..registry import lowering


@lowering("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")
def lower_loss(ctx, node):
    x, target = node.input[0], node.input[1]
    weight = ctx.input(2)
    xt, tt = ctx.type(x), ctx.type(target)
    if xt.dtype not in (DType.FLOAT32, DType.FLOAT64):
        raise ctx.error(f"{node.op_type} on {xt.dtype.name.lower()} is not supported")
    if tt.dtype not in (DType.INT32, DType.INT64):
        raise ctx.error(f"target of type {tt.dtype.name.lower()} is not supported")
    if xt.rank < 2 or tt.shape != (xt.shape[0],) + xt.shape[2:]:
        raise ctx.error(f"target {tt} does not match scores {xt} ([N, C, d1...] and "
                        "[N, d1...])")
    if weight and (ctx.type(weight).shape != (xt.shape[1],)
                   or ctx.type(weight).dtype != xt.dtype):
        raise ctx.error(f"weight must be {xt.dtype.name.lower()}[{xt.shape[1]}]")
    reduction = ctx.attr("reduction", "mean")
    if reduction not in ("none", "sum", "mean"):
        raise ctx.error(f"reduction '{reduction}' is not supported")
    ignore = ctx.attr("ignore_index", None)
    attrs = LossAttrs(reduction, None if ignore is None else int(ignore))
    log_prob = node.output[1] if len(node.output) > 1 else ""
    if log_prob and node.op_type != "SoftmaxCrossEntropyLoss":
        raise ctx.error("only SoftmaxCrossEntropyLoss has a log_prob output")
    ctx.emit(node.op_type, [x, target, weight], [node.output[0], log_prob], attrs)
