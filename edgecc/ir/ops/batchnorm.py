"""IR ops: BatchNormalization (inference form; passes/fold_batchnorm.py folds it into Conv/Gemm).

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/batchnorm.py."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class BatchNormAttrs:
    epsilon: float = 1e-5


ir_op("BatchNormalization", elementwise=True)


def batchnorm_affine(scale, bias, mean, var, epsilon):
    """y = x * a + b per channel, with a = scale / sqrt(var + eps), b = bias - mean * a."""
    a = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)
    b = bias.astype(np.float64) - mean.astype(np.float64) * a
    return a, b
