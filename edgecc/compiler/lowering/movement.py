"""Data movement: Transpose, Concat, Split, Slice, Pad, Gather.

Each IR op has a frozen attrs record with everything resolved at compile time (normalized
axes, clamped slice bounds, full-rank pads), a numpy ``reference`` for constant folding, and a
strided-copy C kernel in backends/generic/movement.py. Split lowers to one Slice per output.

Two cases never reach the C backend: an output with no elements becomes an empty constant,
and an op whose inputs are all constants is evaluated here with its reference (the loader
folds most of those already; it keeps the ones that produce a graph output).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from ...ir import DType, Node, TensorType
from ...ir.ops import op_info
from ...ir.ops.movement import (BitCastAttrs, ConcatAttrs, GatherAttrs, PadAttrs, SliceAttrs,
                                 TransposeAttrs)
from ..registry import lowering


def emit_or_fold(ctx, op: str, inputs: Sequence[str], out: str, attrs, out_type: TensorType):
    """Emit ``op``, unless its output is empty or computable now: then it is a constant."""
    if out_type.numel == 0:
        ctx.graph.add_constant(out, np.zeros(out_type.shape, out_type.dtype.np_dtype))
        return
    consts = [ctx.const(i) for i in inputs]
    if all(c is not None for c in consts):
        (value,) = op_info(op).reference(Node(op, tuple(inputs), (out,), attrs), consts)
        ctx.graph.add_constant(out, np.asarray(value, out_type.dtype.np_dtype)
                               .reshape(out_type.shape))
        return
    ctx.emit(op, inputs, [out], attrs, types=[out_type])


def norm_axis(ctx, axis: int, rank: int) -> int:
    axis = int(axis)
    if not -rank <= axis < rank:
        raise ctx.error(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


@lowering("Transpose")
def lower_transpose(ctx, node):
    x_type = ctx.type(node.input[0])
    rank = x_type.rank
    perm = ctx.attr("perm", None)
    perm = tuple(range(rank))[::-1] if perm is None else tuple(int(p) for p in perm)
    if sorted(perm) != list(range(rank)):
        raise ctx.error(f"perm {list(perm)} is not a permutation of {rank} axes")
    out_type = x_type.with_shape([x_type.shape[p] for p in perm])
    emit_or_fold(ctx, "Transpose", [node.input[0]], node.output[0], TransposeAttrs(perm),
                 out_type)


@lowering("Concat")
def lower_concat(ctx, node):
    inputs = [i for i in node.input if i]
    types = [ctx.type(i) for i in inputs]
    rank = types[0].rank
    axis = ctx.attr("axis", 1 if ctx.opset < 4 else None)
    if axis is None:
        raise ctx.error("Concat needs an axis attribute")
    axis = norm_axis(ctx, axis, rank)
    shape = list(types[0].shape)
    for t in types[1:]:
        if t.rank != rank or any(a != b for k, (a, b) in enumerate(zip(t.shape, shape))
                                 if k != axis):
            raise ctx.error(f"cannot concatenate {types[0]} and {t} along axis {axis}")
        shape[axis] += t.shape[axis]
    out_type = types[0].with_shape(shape)
    kept = [i for i, t in zip(inputs, types) if t.numel > 0]
    emit_or_fold(ctx, "Concat", kept, node.output[0], ConcatAttrs(axis), out_type)


def normalize_slice(start: int, end: int, step: int, dim: int) -> Tuple[int, int]:
    """ONNX Slice bounds for one axis -> (first input index, number of elements)."""
    if step == 0:
        raise ValueError("step 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    count = max(0, -(-(end - start) // step))
    return start, count


def emit_slice(ctx, src: str, out: str, bounds) -> None:
    """``bounds``: {axis: (start, end, step)} in ONNX form (unclamped, possibly negative)."""
    x_type = ctx.type(src)
    starts, steps, sizes = [0] * x_type.rank, [1] * x_type.rank, list(x_type.shape)
    for axis, (b, e, t) in bounds.items():
        try:
            starts[axis], sizes[axis] = normalize_slice(int(b), int(e), int(t),
                                                        x_type.shape[axis])
        except ValueError:
            raise ctx.error(f"slice step 0 on axis {axis}") from None
        steps[axis] = int(t)
    attrs = SliceAttrs(tuple(starts), tuple(steps), tuple(sizes))
    emit_or_fold(ctx, "Slice", [src], out, attrs, x_type.with_shape(sizes))


@lowering("Slice", const_inputs=(1, 2, 3, 4))
def lower_slice(ctx, node):
    rank = ctx.type(node.input[0]).rank
    if ctx.opset < 10:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes, steps = ctx.attr("axes", None), None
    else:
        starts = ctx.const_input(1, "starts").reshape(-1).tolist()
        ends = ctx.const_input(2, "ends").reshape(-1).tolist()
        axes = ctx.const_input(3, "axes", None)
        steps = ctx.const_input(4, "steps", None)
        axes = None if axes is None else axes.reshape(-1).tolist()
        steps = None if steps is None else steps.reshape(-1).tolist()
    axes = list(range(len(starts))) if axes is None else [norm_axis(ctx, a, rank) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps) or len(set(axes)) != len(axes):
        raise ctx.error("starts, ends, axes and steps must have one entry per distinct axis")
    bounds = {a: (s, e, t) for a, s, e, t in zip(axes, starts, ends, steps)}
    emit_slice(ctx, node.input[0], node.output[0], bounds)


@lowering("Split", const_inputs=(1,))
def lower_split(ctx, node):
    x_type = ctx.type(node.input[0])
    axis = norm_axis(ctx, ctx.attr("axis", 0), x_type.rank)
    dim = x_type.shape[axis]
    outs = list(node.output)
    if len(node.input) > 1 and node.input[1]:
        sizes = [int(s) for s in ctx.const_input(1, "split").reshape(-1).tolist()]
    elif ctx.attr("split", None) is not None:
        sizes = [int(s) for s in ctx.attr("split")]
    else:
        n = int(ctx.attr("num_outputs", len(outs)))
        chunk = -(-dim // n)
        sizes = [min(chunk, max(dim - k * chunk, 0)) for k in range(n)]
    if len(sizes) != len(outs) or sum(sizes) != dim or min(sizes) < 0:
        raise ctx.error(f"split sizes {sizes} do not divide axis {axis} of size {dim} "
                        f"into {len(outs)} outputs")
    offset = 0
    for out, size in zip(outs, sizes):
        if out:
            emit_slice(ctx, node.input[0], out, {axis: (offset, offset + size, 1)})
        offset += size


@lowering("Pad", const_inputs=(1, 2, 3))
def lower_pad(ctx, node):
    x_type = ctx.type(node.input[0])
    rank = x_type.rank
    mode = ctx.attr("mode", "constant")
    if mode not in ("constant", "edge", "reflect", "wrap"):
        raise ctx.error(f"Pad mode '{mode}' is not supported")
    if ctx.opset < 11:
        raw = list(ctx.attr("pads", ctx.attr("paddings", [])))
        value, axes = ctx.attr("value", 0.0), None
    else:
        raw = ctx.const_input(1, "pads").reshape(-1).tolist()
        value = ctx.const_input(2, "constant_value", np.array(0))
        value = value.reshape(-1)[0].item() if value.size else 0
        axes = ctx.const_input(3, "axes", None)
        axes = None if axes is None else [norm_axis(ctx, a, rank)
                                          for a in axes.reshape(-1).tolist()]
    axes = list(range(rank)) if axes is None else axes
    if len(raw) != 2 * len(axes):
        raise ctx.error(f"pads has {len(raw)} entries, expected {2 * len(axes)}")
    begin, end = [0] * rank, [0] * rank
    for k, a in enumerate(axes):
        begin[a], end[a] = int(raw[k]), int(raw[len(axes) + k])
    shape = [d + b + e for d, b, e in zip(x_type.shape, begin, end)]
    if min(shape, default=0) < 0:
        raise ctx.error(f"pads {raw} crop more than the input shape {list(x_type.shape)}")
    if mode != "constant":
        if any(b > 0 or e > 0 for b, e, d in zip(begin, end, x_type.shape) if d == 0):
            raise ctx.error(f"Pad mode '{mode}' cannot pad an empty axis")
        if mode == "reflect" and any((b > 0 or e > 0) and d == 1
                                     for b, e, d in zip(begin, end, x_type.shape)):
            raise ctx.error("Pad mode 'reflect' needs at least 2 elements on a padded axis")
    if not x_type.dtype.is_float:
        value = int(value)
    attrs = PadAttrs(tuple(begin + end), mode, value)
    emit_or_fold(ctx, "Pad", [node.input[0]], node.output[0], attrs, x_type.with_shape(shape))


@lowering("Gather")
def lower_gather(ctx, node):
    data, indices = node.input[0], node.input[1]
    x_type, i_type = ctx.type(data), ctx.type(indices)
    axis = norm_axis(ctx, ctx.attr("axis", 0), x_type.rank)
    if i_type.dtype.name not in ("INT32", "INT64"):
        raise ctx.error(f"Gather indices must be int32 or int64, not {i_type}")
    dim = x_type.shape[axis]
    const = ctx.const(indices)
    if const is not None and const.size and (const.min() < -dim or const.max() >= dim):
        raise ctx.error(f"Gather indices out of range for axis {axis} of size {dim}")
    shape = x_type.shape[:axis] + i_type.shape + x_type.shape[axis + 1:]
    emit_or_fold(ctx, "Gather", [data, indices], node.output[0], GatherAttrs(axis),
                 x_type.with_shape(shape))


@lowering("BitCast")
def lower_bitcast(ctx, node):
    """BitCast (opset 26): the same bytes read as another type of the same width."""
    from onnx import TensorProto
    to = ctx.attr("to")
    x_t = ctx.type(node.input[0])
    try:
        dtype = DType.from_onnx(to)
    except KeyError:
        raise ctx.error(f"BitCast to {TensorProto.DataType.Name(to)} is not supported") from None
    if dtype.bits != x_t.dtype.bits or dtype.packed:
        raise ctx.error(f"BitCast from {x_t.dtype.name.lower()} to {dtype.name.lower()}: "
                        "the widths differ")
    ctx.emit("BitCast", [node.input[0]], [node.output[0]], BitCastAttrs(dtype))
