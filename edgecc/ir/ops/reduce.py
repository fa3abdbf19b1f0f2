"""IR ops: ReduceSum, ReduceMean, ReduceMax over a static set of axes.

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/reduce.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class ReduceAttrs:
    axes: Tuple[int, ...]   # sorted, non-negative, at least one
    keepdims: bool = True


def lowest_value(dtype: np.dtype):
    """The identity of max over ``dtype``: -inf, the smallest integer, or False."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return False
    if np.issubdtype(dtype, np.integer):
        return np.iinfo(dtype).min
    return -np.inf


def _reference(op):
    def run(node, xs):
        x, a = xs[0], node.attrs
        with np.errstate(all="ignore"):
            if op == "ReduceSum":
                y = np.sum(x, axis=a.axes, keepdims=a.keepdims, dtype=x.dtype)
            elif op == "ReduceMean":
                y = np.mean(x, axis=a.axes, keepdims=a.keepdims)
            else:
                y = np.maximum.reduce(x, axis=a.axes, keepdims=a.keepdims,
                                      initial=lowest_value(x.dtype))
        return [np.asarray(y).astype(x.dtype)]
    return run


REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax")


for _op in REDUCE_OPS:
    ir_op(_op, elementwise=False, reference=_reference(_op))
