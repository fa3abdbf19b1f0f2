"""IR ops: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
ReduceLogSum, ReduceLogSumExp, ReduceSumSquare over a static set of axes.

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/reduce.py.

Integer semantics (what the C kernel computes): sums, products and sums of squares wrap
modulo 2^64 and then to the element type (numpy's wrapping for in-range inputs); ReduceL1
sums |v| the same way; integer ReduceL2 is floor(sqrt(sum of squares in double)), saturated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class ReduceAttrs:
    axes: Tuple[int, ...]   # sorted, non-negative; empty: each element alone (ReduceL1...)
    keepdims: bool = True


def lowest_value(dtype: np.dtype):
    """The identity of max over ``dtype``: -inf, the smallest integer, or False."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return False
    if np.issubdtype(dtype, np.integer):
        return np.iinfo(dtype).min
    return -np.inf


def highest_value(dtype: np.dtype):
    """The identity of min over ``dtype``: +inf, the largest integer, or True."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return True
    if np.issubdtype(dtype, np.integer):
        return np.iinfo(dtype).max
    return np.inf


def _wrapped(x: np.ndarray, fn, a: ReduceAttrs) -> np.ndarray:
    """An integer reduction computed in uint64 (wrapping), back to x's type."""
    return fn(x.astype(np.uint64), axis=a.axes, keepdims=a.keepdims,
              dtype=np.uint64).astype(x.dtype)


def _logsumexp(x: np.ndarray, a: ReduceAttrs) -> np.ndarray:
    """log(sum(exp(x))) as the kernel computes it: shifted by the largest finite value."""
    finite = np.where(np.isfinite(x), x, -np.inf)
    m = np.maximum.reduce(finite, axis=a.axes, keepdims=True, initial=-np.inf)
    m = np.where(np.isinf(m), 0, m).astype(x.dtype)
    s = np.sum(np.exp(x - m), axis=a.axes, keepdims=True, dtype=x.dtype)
    y = np.log(s) + m
    return y if a.keepdims else np.squeeze(y, axis=a.axes)


def _float_reduce(op, x, a):
    axes, keep = a.axes, a.keepdims
    if op == "ReduceSum":
        return np.sum(x, axis=axes, keepdims=keep, dtype=x.dtype)
    if op == "ReduceMean":
        return np.mean(x, axis=axes, keepdims=keep)
    if op == "ReduceMax":
        return np.maximum.reduce(x, axis=axes, keepdims=keep, initial=lowest_value(x.dtype))
    if op == "ReduceMin":
        return np.minimum.reduce(x, axis=axes, keepdims=keep, initial=highest_value(x.dtype))
    if op == "ReduceProd":
        return np.prod(x, axis=axes, keepdims=keep, dtype=x.dtype)
    if op == "ReduceL1":
        return np.sum(np.abs(x), axis=axes, keepdims=keep, dtype=x.dtype)
    if op == "ReduceL2":
        return np.sqrt(np.sum(x * x, axis=axes, keepdims=keep, dtype=x.dtype))
    if op == "ReduceSumSquare":
        return np.sum(x * x, axis=axes, keepdims=keep, dtype=x.dtype)
    if op == "ReduceLogSum":
        return np.log(np.sum(x, axis=axes, keepdims=keep, dtype=x.dtype))
    return _logsumexp(x, a)


def _int_reduce(op, x, a):
    axes, keep = a.axes, a.keepdims
    if op == "ReduceProd":
        return _wrapped(x, np.prod, a)
    if op == "ReduceL1":
        return _wrapped(np.where(x < 0, -x.astype(np.int64), x.astype(np.int64)), np.sum, a
                        ).astype(x.dtype)
    if op == "ReduceSumSquare":
        u = x.astype(np.uint64)
        return np.sum(u * u, axis=axes, keepdims=keep, dtype=np.uint64).astype(x.dtype)
    if op == "ReduceL2":
        d = x.astype(np.float64)
        r = np.floor(np.sqrt(np.sum(d * d, axis=axes, keepdims=keep)))
        info = np.iinfo(x.dtype)
        return np.clip(r, info.min, info.max).astype(x.dtype)
    return _float_reduce(op, x, a)


def _reference(op):
    def run(node, xs):
        x, a = xs[0], node.attrs
        with np.errstate(all="ignore"):
            if np.issubdtype(x.dtype, np.integer):
                y = _int_reduce(op, x, a)
            else:
                y = _float_reduce(op, x, a)
        return [np.asarray(y).astype(x.dtype)]
    return run


REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


for _op in REDUCE_OPS:
    ir_op(_op, elementwise=False, reference=_reference(_op))
