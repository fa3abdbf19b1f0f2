"""ONNX lowerings: index ops: ArgMax/ArgMin, TopK, Hardmax, GatherElements/GatherND,
ScatterElements/ScatterND/Scatter.

Axes are normalized here; TopK's K must be a compile-time constant (it sets the output
shape). Constant indices are checked against their axis (an error names the bad one); runtime
indices may be negative (counted from the end) and the kernels never read or write out of
bounds with an invalid one: gathers read element 0 of the axis, scatters skip it
(ir/ops/index.py). The deprecated Scatter (opset 9-10) is ScatterElements without reduction.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType, TensorType
from ...ir.ops.index import (ArgAttrs, AxisAttrs, GatherNDAttrs, HardmaxAttrs, ScatterAttrs,
                             TopKAttrs)
from ..registry import lowering
from .movement import emit_or_fold, norm_axis

_INDEX_TYPES = (DType.INT32, DType.INT64)
_REDUCTIONS = ("none", "add", "mul", "max", "min")


def _index_type(ctx, name: str) -> TensorType:
    t = ctx.type(name)
    if t.dtype not in _INDEX_TYPES:
        raise ctx.error(f"{ctx.node.op_type} indices must be int32 or int64, not "
                        f"{t.dtype.name.lower()}")
    return t


def _check_const_indices(ctx, name: str, dims) -> None:
    """Constant indices (last axis = one index per entry of ``dims``, or one per element when
    ``dims`` is an int) must lie in [-dim, dim)."""
    const = ctx.const(name)
    if const is None or const.size == 0:
        return
    dims = np.asarray(dims, np.int64)
    if (const < -dims).any() or (const >= dims).any():
        raise ctx.error(f"{ctx.node.op_type} indices out of range (axis sizes {dims.tolist()})")


@lowering("ArgMax", "ArgMin")
def lower_arg(ctx, node):
    x_t = ctx.type(node.input[0])
    if x_t.dtype == DType.BOOL:
        raise ctx.error(f"{node.op_type} on bool is not supported")
    if x_t.rank == 0:
        raise ctx.error(f"{node.op_type} needs an input of rank 1 or more")
    axis = norm_axis(ctx, ctx.attr("axis", 0), x_t.rank)
    if x_t.shape[axis] == 0:
        raise ctx.error(f"{node.op_type} over an empty axis {axis} has no result")
    keepdims = bool(ctx.attr("keepdims", 1))
    shape = list(x_t.shape)
    if keepdims:
        shape[axis] = 1
    else:
        del shape[axis]
    attrs = ArgAttrs(axis, keepdims, bool(ctx.attr("select_last_index", 0)))
    emit_or_fold(ctx, node.op_type, [node.input[0]], node.output[0], attrs,
                 TensorType(DType.INT64, tuple(shape)))


@lowering("Hardmax")
def lower_hardmax(ctx, node):
    x_t = ctx.type(node.input[0])
    if not x_t.dtype.is_float:
        raise ctx.error(f"Hardmax takes float tensors, not {x_t.dtype.name.lower()}")
    if x_t.rank == 0:
        raise ctx.error("Hardmax needs an input of rank 1 or more")
    # Before opset 13 the input is coerced to 2-D at axis. onnx's version converter has no
    # adapter for that change (it keeps the node as is), so the user's declared opset decides;
    # after an adapter (Flatten first) the 2-D input's flattening would change nothing.
    flatten = min(ctx.opset, ctx.user_opset) < 13
    axis = norm_axis(ctx, ctx.attr("axis", 1 if flatten else -1), x_t.rank)
    emit_or_fold(ctx, "Hardmax", [node.input[0]], node.output[0], HardmaxAttrs(axis, flatten),
                 x_t)


@lowering("TopK", const_inputs=(1,))
def lower_topk(ctx, node):
    x_t = ctx.type(node.input[0])
    if x_t.dtype == DType.BOOL:
        raise ctx.error("TopK on bool is not supported")
    if x_t.rank == 0:
        raise ctx.error("TopK needs an input of rank 1 or more")
    axis = norm_axis(ctx, ctx.attr("axis", -1), x_t.rank)
    if ctx.opset >= 10:
        k = np.asarray(ctx.const_input(1, "K")).reshape(-1)
        if k.size != 1:
            raise ctx.error(f"TopK's K must hold one value, not {k.size}")
        k = int(k[0])
    else:
        k = int(ctx.attr("k", 0))
    dim = x_t.shape[axis]
    if not 0 <= k <= dim:
        raise ctx.error(f"TopK's K = {k} is outside [0, {dim}] (axis {axis})")
    shape = list(x_t.shape)
    shape[axis] = k
    types = [x_t.with_shape(tuple(shape)), TensorType(DType.INT64, tuple(shape))]
    if k == 0:  # empty outputs
        for out, t in zip(node.output, types):
            if out:
                ctx.graph.add_constant(out, np.zeros(t.shape, t.dtype.np_dtype))
        return
    outs = [node.output[0], node.output[1] if len(node.output) > 1 else ""]
    if not outs[1]:
        outs[1] = ctx.temp("topk_indices", types[1])
    ctx.emit("TopK", [node.input[0]], outs,
             TopKAttrs(axis, k, bool(ctx.attr("largest", 1))), types=types)


def _elements_axis(ctx, op: str, x_t, i_t, indices: str) -> int:
    """The axis of GatherElements/ScatterElements; the indices fit the data off that axis
    and, when constant, on it."""
    axis = norm_axis(ctx, ctx.attr("axis", 0), x_t.rank)
    if any(i > d for k, (i, d) in enumerate(zip(i_t.shape, x_t.shape)) if k != axis):
        raise ctx.error(f"{op} indices shape {list(i_t.shape)} exceeds data shape "
                        f"{list(x_t.shape)} off axis {axis}")
    _check_const_indices(ctx, indices, x_t.shape[axis])
    return axis


@lowering("GatherElements")
def lower_gather_elements(ctx, node):
    data, indices = node.input[0], node.input[1]
    x_t, i_t = ctx.type(data), _index_type(ctx, indices)
    if x_t.rank == 0 or i_t.rank != x_t.rank:
        raise ctx.error(f"GatherElements needs data and indices of the same rank >= 1, not "
                        f"{x_t.rank} and {i_t.rank}")
    axis = _elements_axis(ctx, "GatherElements", x_t, i_t, indices)
    if x_t.shape[axis] == 0 and i_t.numel:
        raise ctx.error(f"GatherElements from an empty axis {axis}")
    emit_or_fold(ctx, "GatherElements", [data, indices], node.output[0], AxisAttrs(axis),
                 x_t.with_shape(i_t.shape))


def _reduction(ctx, dtype: DType) -> str:
    reduction = ctx.attr("reduction", "none")
    if reduction not in _REDUCTIONS:
        raise ctx.error(f"unknown reduction '{reduction}'")
    if reduction != "none" and dtype == DType.BOOL:
        raise ctx.error(f"reduction '{reduction}' on bool is not supported")
    return reduction


@lowering("ScatterElements", "Scatter")
def lower_scatter_elements(ctx, node):
    data, indices, updates = node.input[0], node.input[1], node.input[2]
    x_t, i_t, u_t = ctx.type(data), _index_type(ctx, indices), ctx.type(updates)
    if x_t.rank == 0 or i_t.rank != x_t.rank or u_t.shape != i_t.shape:
        raise ctx.error(f"{node.op_type} needs data, indices and updates of one rank >= 1 "
                        f"and indices shaped as updates")
    axis = _elements_axis(ctx, node.op_type, x_t, i_t, indices)
    attrs = ScatterAttrs(axis, _reduction(ctx, x_t.dtype))
    emit_or_fold(ctx, "ScatterElements", [data, indices, updates], node.output[0], attrs, x_t)


def _nd_check(ctx, x_t: TensorType, i_t: TensorType, batch_dims: int) -> int:
    """The index tuple length m, after checking the shapes GatherND/ScatterND need."""
    if i_t.rank == 0 or x_t.rank == 0:
        raise ctx.error(f"{ctx.node.op_type} needs data and indices of rank >= 1")
    m = i_t.shape[-1]
    if not 0 <= batch_dims < min(x_t.rank, i_t.rank):
        raise ctx.error(f"batch_dims {batch_dims} must be below both ranks")
    if x_t.shape[:batch_dims] != i_t.shape[:batch_dims]:
        raise ctx.error(f"batch dims {list(i_t.shape[:batch_dims])} of indices differ from "
                        f"data's {list(x_t.shape[:batch_dims])}")
    if not 1 <= m <= x_t.rank - batch_dims:
        raise ctx.error(f"indices' last dim {m} must be in [1, {x_t.rank - batch_dims}]")
    if any(d == 0 for d in x_t.shape[batch_dims:batch_dims + m]) and i_t.numel:
        raise ctx.error(f"{ctx.node.op_type} indexes an empty axis")
    return m


@lowering("GatherND")
def lower_gather_nd(ctx, node):
    data, indices = node.input[0], node.input[1]
    x_t, i_t = ctx.type(data), _index_type(ctx, indices)
    b = int(ctx.attr("batch_dims", 0))
    m = _nd_check(ctx, x_t, i_t, b)
    _check_const_indices(ctx, indices, x_t.shape[b:b + m])
    shape = i_t.shape[:-1] + x_t.shape[b + m:]
    emit_or_fold(ctx, "GatherND", [data, indices], node.output[0], GatherNDAttrs(b),
                 x_t.with_shape(shape))


@lowering("ScatterND")
def lower_scatter_nd(ctx, node):
    data, indices, updates = node.input[0], node.input[1], node.input[2]
    x_t, i_t, u_t = ctx.type(data), _index_type(ctx, indices), ctx.type(updates)
    m = _nd_check(ctx, x_t, i_t, 0)
    if u_t.shape != i_t.shape[:-1] + x_t.shape[m:]:
        raise ctx.error(f"ScatterND updates shape {list(u_t.shape)} must be "
                        f"{list(i_t.shape[:-1] + x_t.shape[m:])}")
    _check_const_indices(ctx, indices, x_t.shape[:m])
    attrs = ScatterAttrs(0, _reduction(ctx, x_t.dtype))
    emit_or_fold(ctx, "ScatterND", [data, indices, updates], node.output[0], attrs, x_t)
