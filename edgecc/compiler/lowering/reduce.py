"""ReduceSum, ReduceMean, ReduceMax over a static set of axes.

Axes come from the ``axes`` attribute (ReduceMean/ReduceMax before opset 18, ReduceSum before
13) or from a constant second input. After lowering they are sorted, non-negative and never
empty: "no axes" means every axis, unless noop_with_empty_axes makes the node an Identity.
An empty reduction gives the op's identity: 0 for ReduceSum, the lowest value for ReduceMax
(-inf, INT_MIN, false) and NaN for ReduceMean.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ...ir.ops.reduce import REDUCE_OPS, ReduceAttrs
from ..registry import lowering


@lowering(*REDUCE_OPS, const_inputs=(1,))
def lower_reduce(ctx, node):
    x_t = ctx.type(node.input[0])
    op = node.op_type
    if x_t.dtype == DType.BOOL and op != "ReduceMax":
        raise ctx.error(f"{op} on bool is not supported")
    axes_from_input = ctx.opset >= (13 if op == "ReduceSum" else 18)
    if axes_from_input:
        axes = ctx.const_input(1, "axes", None)
    else:
        axes = ctx.attr("axes", None)
    axes = [] if axes is None else [int(v) for v in np.asarray(axes).reshape(-1)]
    keepdims = bool(ctx.attr("keepdims", 1))
    if not axes:
        if axes_from_input and ctx.attr("noop_with_empty_axes", 0):
            ctx.alias_output(node.input[0], node.output[0])
            return
        axes = list(range(x_t.rank))
    rank = x_t.rank
    for v in axes:
        if not -rank <= v < rank:
            raise ctx.error(f"axis {v} is out of range for rank {rank}")
    axes = tuple(sorted({v % rank for v in axes}))
    if not axes:  # rank-0 input: nothing to reduce
        ctx.alias_output(node.input[0], node.output[0])
        return
    ctx.emit(op, [node.input[0]], [node.output[0]], ReduceAttrs(axes, keepdims))
