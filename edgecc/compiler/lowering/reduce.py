"""ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceLogSum,
ReduceLogSumExp, ReduceSumSquare over a static set of axes.

Axes come from the ``axes`` attribute (before opset 18; ReduceSum before 13) or from a
constant second input. After lowering they are sorted and non-negative: "no axes" means every
axis, unless noop_with_empty_axes makes the node an Identity (or, for the ops that transform
each element, a node over no axes: _reduce_nothing).
An empty reduction gives the op's identity: 0 for ReduceSum, ReduceL1, ReduceL2 and
ReduceSumSquare, 1 for ReduceProd, the lowest value for ReduceMax (-inf, INT_MIN, false), the
highest for ReduceMin, -inf for ReduceLogSum and ReduceLogSumExp, and NaN for ReduceMean.
Bool tensors reduce only with ReduceMax and ReduceMin; ReduceLogSum and ReduceLogSumExp take
float tensors only (ONNX removed their integer forms in opset 28).
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
    if x_t.dtype == DType.BOOL and op not in ("ReduceMax", "ReduceMin"):
        raise ctx.error(f"{op} on bool is not supported")
    if op in ("ReduceLogSum", "ReduceLogSumExp") and not x_t.dtype.is_float:
        raise ctx.error(f"{op} takes float tensors only, not {x_t.dtype.name.lower()}")
    axes_from_input = ctx.opset >= (13 if op == "ReduceSum" else 18)
    if axes_from_input:
        axes = ctx.const_input(1, "axes", None)
    else:
        axes = ctx.attr("axes", None)
    axes = [] if axes is None else [int(v) for v in np.asarray(axes).reshape(-1)]
    keepdims = bool(ctx.attr("keepdims", 1))
    if not axes:
        if axes_from_input and ctx.attr("noop_with_empty_axes", 0):
            _reduce_nothing(ctx, node)
            return
        axes = list(range(x_t.rank))
    rank = x_t.rank
    for v in axes:
        if not -rank <= v < rank:
            raise ctx.error(f"axis {v} is out of range for rank {rank}")
    axes = tuple(sorted({v % rank for v in axes}))
    if not axes:  # rank-0 input: nothing to reduce
        _reduce_nothing(ctx, node)
        return
    ctx.emit(op, [node.input[0]], [node.output[0]], ReduceAttrs(axes, keepdims))


# Reductions whose value on one element is not the element: |v|, sqrt(v * v), v * v, log v
_TRANSFORMING = ("ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")


def _reduce_nothing(ctx, node) -> None:
    """A reduction over no axes (noop_with_empty_axes, or a rank-0 input): each element is
    reduced alone, so the output is the input, or its elementwise transform for the
    _TRANSFORMING ops (as the ONNX spec states since onnx#7137): their node gets no axes."""
    if node.op_type in _TRANSFORMING:
        ctx.emit(node.op_type, [node.input[0]], [node.output[0]], ReduceAttrs((), True),
                 types=[ctx.type(node.input[0])])
    else:
        ctx.alias_output(node.input[0], node.output[0])
