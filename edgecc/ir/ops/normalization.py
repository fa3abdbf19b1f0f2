"""IR ops: normalizations over a set of axes, LRN, LpPool and MaxUnpool.

``Normalize`` is the one op behind InstanceNormalization, GroupNormalization,
LpNormalization, MeanVarianceNormalization and RMSNormalization (the lowerings in
compiler/lowering/normalization.py choose the axes, the mode and the views): for each
position of the kept axes it reduces the elements of the normalized axes and writes

    meanvar:  y = (x - mean) * (1 / sqrt(var + eps))        * scale + bias
    rms:      y = x * (1 / sqrt(mean(x^2) + eps))           * scale + bias
    mvn:      y = (x - mean) / (sqrt(var) + eps)
    l1, l2:   y = x / norm (0 where norm is 0), norm = sum|x| or sqrt(sum x^2)

Scale and bias (optional) are broadcast to x's shape as numpy does (right-aligned); the
variance is the two-pass mean of squared deviations. Their attribute records and facts live
here; the ONNX lowerings are in compiler/lowering/normalization.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..registry import ir_op
from .pool import PoolAttrs

NORMALIZE_MODES = ("meanvar", "rms", "mvn", "l1", "l2")


@dataclass(frozen=True)
class NormalizeAttrs:
    axes: Tuple[int, ...]   # normalized axes: sorted, non-negative, at least one
    mode: str               # one of NORMALIZE_MODES
    epsilon: float = 0.0


def _inputs(node, xs):
    """(x, scale or None, bias or None) from the present inputs."""
    it = iter(xs)
    vals = [next(it) if name else None for name in node.inputs]
    vals += [None] * (3 - len(vals))
    return vals[0], vals[1], vals[2]


def normalize_reference(node, xs):
    x, scale, bias = _inputs(node, xs)
    a = node.attrs
    with np.errstate(all="ignore"):
        mean = np.mean(x, axis=a.axes, keepdims=True)
        var = np.mean((x - mean) ** 2, axis=a.axes, keepdims=True)
        if a.mode == "meanvar":
            y = (x - mean) * (1 / np.sqrt(var + x.dtype.type(a.epsilon)))
        elif a.mode == "rms":
            y = x * (1 / np.sqrt(np.mean(x * x, axis=a.axes, keepdims=True)
                                 + x.dtype.type(a.epsilon)))
        elif a.mode == "mvn":
            y = (x - mean) / (np.sqrt(var) + x.dtype.type(a.epsilon))
        else:
            norm = (np.sum(np.abs(x), axis=a.axes, keepdims=True) if a.mode == "l1"
                    else np.sqrt(np.sum(x * x, axis=a.axes, keepdims=True)))
            y = np.where(norm == 0, 0, x / np.where(norm == 0, 1, norm))
        if scale is not None:
            y = y * scale
        if bias is not None:
            y = y + bias
    return [np.asarray(y).astype(x.dtype)]


ir_op("Normalize", elementwise=False, reference=normalize_reference)


@dataclass(frozen=True)
class LRNAttrs:
    """Local response normalization across channels (axis 1) of an NC... tensor."""

    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    bias: float = 1.0


def _lrn_reference(node, xs):
    x, a = xs[0], node.attrs
    c1, c2 = (a.size - 1) // 2, a.size - 1 - (a.size - 1) // 2
    sq = np.zeros_like(x)
    for c in range(x.shape[1]):
        sq[:, c] = np.sum(x[:, max(0, c - c1):c + c2 + 1] ** 2, axis=1)
    with np.errstate(all="ignore"):
        y = x / (x.dtype.type(a.bias) + x.dtype.type(a.alpha / a.size) * sq) ** x.dtype.type(a.beta)
    return [y.astype(x.dtype)]


ir_op("LRN", elementwise=False, reference=_lrn_reference)


@dataclass(frozen=True)
class LpPoolAttrs(PoolAttrs):
    """PoolAttrs (explicit pads) and p: y = (sum over the window of |x|^p)^(1/p), padding
    taps add 0 (onnx's reference)."""

    p: int = 2


ir_op("LpPool", elementwise=False)


@dataclass(frozen=True)
class MaxUnpoolAttrs:
    """Scatter x to the flat indices of the unpooled shape ``inferred`` (N, C, spatial); the
    output (possibly larger: ``output_shape``) holds that tensor in its leading corner and
    zeros elsewhere, as onnx's reference does. Indices outside ``inferred`` are skipped."""

    inferred: Tuple[int, ...]


ir_op("MaxUnpool", elementwise=False)
