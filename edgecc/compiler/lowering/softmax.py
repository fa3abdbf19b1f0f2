"""Softmax and LogSoftmax, normalized jointly over the contiguous axes [axis, end_axis).

Opset 13 and later normalize over the single axis ``axis`` (end_axis = axis + 1). Older opsets
coerce the input to 2-D at ``axis`` and normalize each row, i.e. over all of [axis, rank).
Both are numerically stable: the kernel subtracts the maximum before exponentiating.
"""
from __future__ import annotations

from ...ir.ops.softmax import SoftmaxAttrs
from ..registry import lowering


@lowering("Softmax", "LogSoftmax")
def lower_softmax(ctx, node):
    x_t = ctx.type(node.input[0])
    if not x_t.dtype.is_float:
        raise ctx.error(f"{node.op_type} on {x_t.dtype.name.lower()} is not supported")
    rank = x_t.rank
    new_semantics = ctx.opset >= 13
    axis = int(ctx.attr("axis", -1 if new_semantics else 1))
    if rank == 0 or not -rank <= axis < (rank if new_semantics else rank + 1):
        raise ctx.error(f"axis {axis} is out of range for rank {rank}")
    if axis < 0:
        axis += rank
    end_axis = axis + 1 if new_semantics else rank
    ctx.emit(node.op_type, [node.input[0]], [node.output[0]], SoftmaxAttrs(axis, end_axis))
