"""IR ops: pointwise ops: unary activations and math, Cast, broadcasting binaries.

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/elementwise.py."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import DType
from ..registry import ir_op


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(np.float32)


def _gelu(x, a, b, ap):
    if ap == "tanh":
        inner = np.float32(0.7978845608028654) * (x + np.float32(0.044715) * x ** 3)
        return np.float32(0.5) * x * (1 + np.tanh(inner))
    return np.float32(0.5) * x * (1 + _erf(x / np.float32(math.sqrt(2))))


# Unary pointwise ops: (ONNX attribute defaults, float32 numpy semantics f(x, alpha, beta,
# approximate), fuses into Conv/Gemm/MatMul as an activation). Clip's bounds are its alpha
# and beta (compiler/lowering/elementwise.py). Each one's C expression is in
# backends/generic/elementwise.py (activation_expr).
UNARY = {
    "Relu": ({}, lambda x, a, b, ap: np.maximum(x, np.float32(0)), True),
    "LeakyRelu": ({"alpha": 0.01}, lambda x, a, b, ap: np.where(x >= 0, x, x * np.float32(a)),
                  True),
    "Clip": (None, lambda x, a, b, ap: np.clip(x, np.float32(a), np.float32(b)), True),
    "Sigmoid": ({}, lambda x, a, b, ap: np.float32(1) / (np.float32(1) + np.exp(-x)), True),
    "HardSigmoid": ({"alpha": 0.2, "beta": 0.5},
                    lambda x, a, b, ap: np.clip(np.float32(a) * x + np.float32(b), 0, 1), True),
    "HardSwish": ({}, lambda x, a, b, ap: x * np.clip(x / np.float32(6) + np.float32(0.5), 0, 1),
                  True),
    "Tanh": ({}, lambda x, a, b, ap: np.tanh(x), True),
    "Gelu": ({"approximate": "none"}, _gelu, False),
    "Exp": ({}, lambda x, a, b, ap: np.exp(x), False),
    "Log": ({}, lambda x, a, b, ap: np.log(x), False),
    "Sqrt": ({}, lambda x, a, b, ap: np.sqrt(x), False),
    "Neg": ({}, lambda x, a, b, ap: -x, False),
    "Abs": ({}, lambda x, a, b, ap: np.abs(x), False),
    "Erf": ({}, lambda x, a, b, ap: _erf(x), False),
    "Elu": ({"alpha": 1.0}, lambda x, a, b, ap: np.where(x >= 0, x, np.float32(a) * np.expm1(x)),
            True),
    "Softsign": ({}, lambda x, a, b, ap: x / (np.float32(1) + np.abs(x)), False),
}
# the unary ops whose ONNX attributes the generic lowering reads (Clip has its own)
UNARY_DEFAULTS = {op: d for op, (d, _, _) in UNARY.items() if d is not None}

for _op, (_, _fn, _act) in UNARY.items():
    ir_op(_op, elementwise=True, pointwise=_fn, activation=_act)


@dataclass(frozen=True)
class CastAttrs:
    to: DType


ir_op("Cast", elementwise=False,
      reference=lambda n, xs: [xs[0].astype(n.attrs.to.np_dtype)])


ir_op("Identity", reference=lambda n, xs: [xs[0]], quant="shared")


def _div(a, b):
    """ONNX Div; on integers it truncates like C, and (as the C kernel does) x / 0 is 0."""
    if a.dtype.kind not in "iu":
        return np.divide(a, b)
    with np.errstate(all="ignore"):
        safe = np.where(b == 0, 1, b).astype(b.dtype)
        q = (a - np.fmod(a, safe)) // safe
        return np.where(b == 0, 0, q).astype(a.dtype)


BINARY_NUMPY = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _div,
    "Pow": lambda a, b: np.power(a, b).astype(a.dtype),
    "Min": np.minimum, "Max": np.maximum,
    "PRelu": lambda a, b: np.where(a < 0, a * b, a).astype(a.dtype),
}


for _op, _fn in BINARY_NUMPY.items():
    ir_op(_op, elementwise=True, reference=lambda n, xs, fn=_fn: [np.asarray(fn(xs[0], xs[1]))])
