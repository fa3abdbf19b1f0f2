"""IR ops (attribute records and facts): index ops: ArgMax/ArgMin, TopK, Hardmax,
GatherElements/GatherND, ScatterElements/ScatterND.

The numpy references are the C kernels' semantics (backends/generic/index.py):
- ArgMax/ArgMin and Hardmax: a NaN counts as the extreme value (numpy's argmax/argmin);
  ties go to the first index, or the last with select_last_index.
- TopK: sorted output, NaN larger than every number, ties to the lower index.
- Indices may be negative (counted from the end of their axis). A runtime index outside its
  axis reads element 0 of that axis (gathers) or is skipped (scatters): the C never reads
  or writes out of bounds.
- Scatter reductions on integers wrap (add, mul) like numpy; on floats max/min propagate NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class ArgAttrs:
    axis: int               # in [0, rank)
    keepdims: bool = True
    select_last_index: bool = False


@dataclass(frozen=True)
class HardmaxAttrs:
    axis: int               # in [0, rank)
    flatten: bool = False   # opset < 13: the axes from ``axis`` on are one axis


@dataclass(frozen=True)
class TopKAttrs:
    axis: int               # in [0, rank)
    k: int                  # 1 <= k <= the axis size
    largest: bool = True


@dataclass(frozen=True)
class AxisAttrs:
    axis: int               # in [0, rank)


@dataclass(frozen=True)
class ScatterAttrs:
    axis: int = 0           # in [0, rank) (ScatterElements; unused by ScatterND)
    reduction: str = "none"  # none, add, mul, max, min


@dataclass(frozen=True)
class GatherNDAttrs:
    batch_dims: int = 0


def _arg(op):
    def run(node, xs):
        x, a = xs[0], node.attrs
        fn = np.argmax if op == "ArgMax" else np.argmin
        if a.select_last_index:
            y = x.shape[a.axis] - 1 - fn(np.flip(x, a.axis), axis=a.axis)
        else:
            y = fn(x, axis=a.axis)
        y = np.asarray(y, np.int64)
        return [np.expand_dims(y, a.axis) if a.keepdims else y]
    return run


def _hardmax(node, xs):
    x, a = xs[0], node.attrs
    shape = x.shape
    if a.flatten:
        x = x.reshape(int(np.prod(shape[:a.axis])), -1)
    axis = 1 if a.flatten else a.axis
    best = np.expand_dims(np.argmax(x, axis=axis), axis)
    pos = np.arange(x.shape[axis]).reshape([-1 if k == axis else 1 for k in range(x.ndim)])
    return [(pos == best).astype(x.dtype).reshape(shape)]


def _topk(node, xs):
    x, a = xs[0], node.attrs
    pos = np.indices(x.shape)[a.axis]
    if a.largest:  # descending values, ascending indices: sort (value, -index) and flip
        order = np.flip(np.lexsort((-pos, x), axis=a.axis), axis=a.axis)
    else:
        order = np.lexsort((pos, x), axis=a.axis)
    order = np.take(order, np.arange(a.k), axis=a.axis)
    return [np.take_along_axis(x, order, axis=a.axis), order.astype(np.int64)]


def _wrap_index(idx: np.ndarray, dim: int):
    """(wrapped indices, in-range mask)."""
    idx = np.asarray(idx, np.int64)
    idx = np.where(idx < 0, idx + dim, idx)
    ok = (idx >= 0) & (idx < dim)
    return np.where(ok, idx, 0), ok


def _gather_elements(node, xs):
    x, idx = xs
    idx, _ = _wrap_index(idx, x.shape[node.attrs.axis])
    grid = list(np.indices(idx.shape, sparse=True))
    grid[node.attrs.axis] = idx
    return [x[tuple(grid)]]


def _combine(reduction: str, old, new):
    with np.errstate(all="ignore"):
        if reduction == "add":
            return (old + new).astype(old.dtype)
        if reduction == "mul":
            return (old * new).astype(old.dtype)
        if reduction == "max":
            return np.maximum(old, new)
        if reduction == "min":
            return np.minimum(old, new)
    return new


def _scatter_elements(node, xs):
    x, idx, upd = xs
    a = node.attrs
    y = x.copy()
    idx, ok = _wrap_index(idx, x.shape[a.axis])
    for pos in np.ndindex(*idx.shape):
        if not ok[pos]:
            continue
        target = list(pos)
        target[a.axis] = int(idx[pos])
        target = tuple(target)
        y[target] = _combine(a.reduction, y[target], upd[pos])
    return [y]


def _nd_offsets(shape, idx: np.ndarray):
    """Wrapped index tuples over the first idx.shape[-1] axes of ``shape``, their mask."""
    m = idx.shape[-1]
    dims = np.asarray(shape[:m], np.int64)
    idx = np.asarray(idx, np.int64)
    idx = np.where(idx < 0, idx + dims, idx)
    ok = np.all((idx >= 0) & (idx < dims), axis=-1)
    return np.where(ok[..., None], idx, 0), ok


def _gather_nd(node, xs):
    x, idx = xs
    b = node.attrs.batch_dims
    batch = x.shape[:b]
    nb = int(np.prod(batch))
    xb = x.reshape((nb,) + x.shape[b:])
    ib = idx.reshape((nb,) + idx.shape[b:])
    wrapped, _ = _nd_offsets(x.shape[b:], ib)
    out = np.stack([xb[k][tuple(np.moveaxis(wrapped[k], -1, 0))] for k in range(nb)])
    m = idx.shape[-1]
    return [out.reshape(idx.shape[:-1] + x.shape[b + m:])]


def _scatter_nd(node, xs):
    x, idx, upd = xs
    y = x.copy()
    wrapped, ok = _nd_offsets(x.shape, idx)
    for pos in np.ndindex(*idx.shape[:-1]):
        if ok[pos]:
            target = tuple(int(v) for v in wrapped[pos])
            y[target] = _combine(node.attrs.reduction, y[target], upd[pos])
    return [y]


ir_op("ArgMax", reference=_arg("ArgMax"))
ir_op("ArgMin", reference=_arg("ArgMin"))
ir_op("Hardmax", reference=_hardmax)
ir_op("TopK", reference=_topk)
ir_op("GatherElements", reference=_gather_elements)
ir_op("GatherND", reference=_gather_nd)
ir_op("ScatterElements", reference=_scatter_elements)
ir_op("ScatterND", reference=_scatter_nd)
