"""IR ops: Softmax and LogSoftmax.

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/softmax.py."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class SoftmaxAttrs:
    axis: int       # first normalized axis (non-negative)
    end_axis: int   # one past the last normalized axis


def _reference(log: bool):
    def run(node, xs):
        x, a = xs[0], node.attrs
        axes = tuple(range(a.axis, a.end_axis))
        if x.size == 0:
            return [x]
        shifted = x - np.max(x, axis=axes, keepdims=True)
        total = np.sum(np.exp(shifted), axis=axes, keepdims=True)
        y = shifted - np.log(total) if log else np.exp(shifted) / total
        return [y.astype(x.dtype)]
    return run


ir_op("Softmax", elementwise=False, reference=_reference(False))


ir_op("LogSoftmax", elementwise=False, reference=_reference(True))
