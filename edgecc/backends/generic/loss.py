"""Portable C kernels: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss.

The scores are viewed as [N, C, D] (D: the product of the spatial axes); for each of the
N x D elements one loop over the C classes (stride D) finds the log-softmax normalizer
(SoftmaxCrossEntropyLoss) and the target's score.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ..codegen import c_literal
from ..kernels import Kernel, kernel


@kernel("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")
def loss(ctx, node):
    a = node.attrs
    x, target = ctx.view(node.inputs[0]), ctx.view(node.inputs[1])
    weight = ctx.view(node.inputs[2]) if node.inputs[2] else None
    y = ctx.view(node.outputs[0])
    log_prob = ctx.view(node.outputs[1]) if len(node.outputs) > 1 and node.outputs[1] else None
    f = "f" if x.dtype == DType.FLOAT32 else ""
    ignore = None if a.ignore_index is None else c_literal(a.ignore_index, DType.INT64)
    args = [x.name, target.name] + [t.name for t in (weight, y, log_prob) if t is not None]
    return Kernel("loss.c.j2", dict(
        x=x, target=target, weight=weight, y=y, log_prob=log_prob,
        softmax=node.op == "SoftmaxCrossEntropyLoss", reduction=a.reduction, ignore=ignore,
        N=x.shape[0], C=x.shape[1], D=int(np.prod(x.shape[2:])), exp="exp" + f,
        log="log" + f), args)
