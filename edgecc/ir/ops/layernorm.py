"""IR ops: LayerNormalization (normalize over [axis, rank), then scale and shift).

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/layernorm.py."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class LayerNormAttrs:
    axis: int             # first normalized axis (non-negative)
    epsilon: float = 1e-5


def _reference(node, xs):
    x, scale = xs[0], xs[1]
    bias = xs[2] if len(xs) > 2 else None
    axes = tuple(range(node.attrs.axis, x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(np.mean((x - mean) ** 2, axis=axes, keepdims=True)
                          + node.attrs.epsilon)
    y = (x - mean) * inv_std * scale + (0 if bias is None else bias)
    # by position (constant folding pairs them with node.outputs, "" for one not asked for)
    return [y.astype(x.dtype), mean, inv_std][:len(node.outputs)]


ir_op("LayerNormalization", elementwise=False, reference=_reference)
