"""IR ops (attribute records and facts): NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss.

Inputs (scores [N, C, d1...], target [N, d1...], weight [C] or ""), outputs (loss,
log_prob or ""); SoftmaxCrossEntropyLoss takes the log-softmax of the scores over axis 1
first. The loss of one element is -weight[t] * score[n, t, d...], 0 where the target equals
ignore_index; "mean" divides the sum by the sum of the weights of the elements not ignored
(their count without weights). A target outside [0, C) reads class 0 or C - 1 (clamped).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class LossAttrs:
    reduction: str = "mean"              # none, sum or mean
    ignore_index: Optional[int] = None


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-softmax over axis 1 (x - max - log(sum(exp(x - max)))), as the kernel computes."""
    m = np.max(x, axis=1, keepdims=True)
    return (x - m - np.log(np.sum(np.exp(x - m), axis=1, keepdims=True))).astype(x.dtype)


def _reference(softmax: bool):
    def run(node, xs):
        a = node.attrs
        x, target = xs[0], xs[1].astype(np.int64)
        weight = xs[2] if len(node.inputs) > 2 and node.inputs[2] else None
        with np.errstate(all="ignore"):
            scores = log_softmax(x) if softmax else x
            n, c = x.shape[:2]
            flat = scores.reshape(n, c, -1)
            t = target.reshape(n, -1)
            picked = np.take_along_axis(flat, np.clip(t, 0, c - 1)[:, None, :], axis=1)[:, 0]
            w = (weight[np.clip(t, 0, c - 1)] if weight is not None
                 else np.ones(t.shape, x.dtype))
            ignored = t == a.ignore_index if a.ignore_index is not None else np.zeros(t.shape, bool)
            w = np.where(ignored, 0, w).astype(x.dtype)
            loss = np.where(ignored, 0, -picked * w).astype(x.dtype)
            if a.reduction == "none":
                out = loss.reshape(target.shape)
            elif a.reduction == "sum":
                out = np.sum(loss)
            else:
                out = np.sum(loss) / np.sum(w)
        return [np.asarray(out, x.dtype), scores]  # by position (an unused log_prob is dropped)
    return run


ir_op("NegativeLogLikelihoodLoss", reference=_reference(False))


ir_op("SoftmaxCrossEntropyLoss", reference=_reference(True))
