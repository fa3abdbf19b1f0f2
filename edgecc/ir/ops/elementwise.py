"""IR ops: pointwise ops: unary activations and math, broadcasting binaries (Cast: cast.py).

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/elementwise.py."""
from __future__ import annotations

import math

import numpy as np

from ..registry import ir_op


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(np.float32)


def _gelu(x, a, b, ap):
    if ap == "tanh":
        inner = np.float32(0.7978845608028654) * (x + np.float32(0.044715) * x ** 3)
        return np.float32(0.5) * x * (1 + np.tanh(inner))
    return np.float32(0.5) * x * (1 + _erf(x / np.float32(math.sqrt(2))))


def _softplus(x):
    """log(1 + exp(x)) without overflow: x + log1p(exp(-x)) for x > 0."""
    with np.errstate(all="ignore"):
        return np.where(x > 0, x + np.log1p(np.exp(-x)), np.log1p(np.exp(x))).astype(x.dtype)


def _selu(x, a, g):
    with np.errstate(all="ignore"):
        return np.float32(g) * np.where(x > 0, x, np.float32(a) * np.exp(x) - np.float32(a))


def _celu(x, a):
    with np.errstate(all="ignore"):
        return np.where(x > 0, x, np.float32(a) * np.expm1(x / np.float32(a)))


def _shrink(x, lambd, bias):
    """Shrink[lambd, bias] (alpha = lambd, beta = bias); NaN gives 0, as in onnxruntime."""
    lambd, bias = np.float32(lambd), np.float32(bias)
    return np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, np.float32(0)))


def _swish(x, a):
    with np.errstate(all="ignore"):
        return x / (np.float32(1) + np.exp(-np.float32(a) * x))


def _math(fn):
    """A numpy function as a unary entry's semantics (no warnings outside its domain)."""
    def run(x, a, b, ap):
        with np.errstate(all="ignore"):
            return fn(x)
    return run


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
    "Selu": ({"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875},
             lambda x, a, b, ap: _selu(x, a, b), True),
    "Celu": ({"alpha": 1.0}, lambda x, a, b, ap: _celu(x, a), True),
    "Softplus": ({}, lambda x, a, b, ap: _softplus(x), True),
    "Mish": ({}, lambda x, a, b, ap: x * np.tanh(_softplus(x)), True),
    "Swish": ({"alpha": 1.0}, lambda x, a, b, ap: _swish(x, a), True),
    "ThresholdedRelu": ({"alpha": 1.0},
                        lambda x, a, b, ap: np.where(x > np.float32(a), x, np.float32(0)), True),
    "Shrink": ({"lambd": 0.5, "bias": 0.0}, lambda x, a, b, ap: _shrink(x, a, b), False),
    "Sign": ({}, _math(np.sign), False),
    "Reciprocal": ({}, _math(lambda x: np.float32(1) / x), False),
    "Floor": ({}, _math(np.floor), False),
    "Ceil": ({}, _math(np.ceil), False),
    "Round": ({}, _math(np.rint), False),  # half to even
    **{op: ({}, _math(getattr(np, name)), False) for op, name in (
        ("Sin", "sin"), ("Cos", "cos"), ("Tan", "tan"), ("Asin", "arcsin"), ("Acos", "arccos"),
        ("Atan", "arctan"), ("Sinh", "sinh"), ("Cosh", "cosh"), ("Asinh", "arcsinh"),
        ("Acosh", "arccosh"), ("Atanh", "arctanh"))},
}
# ONNX attribute -> UnaryAttrs field, where the names differ (the lowering renames them)
UNARY_ATTR_FIELDS = {"Selu": {"gamma": "beta"}, "Shrink": {"lambd": "alpha", "bias": "beta"}}
# unary ops that also take integer tensors (activation_expr has their integer expressions)
UNARY_INTEGER = ("Relu", "Neg", "Abs", "Sign")
# the unary ops whose ONNX attributes the generic lowering reads (Clip has its own)
UNARY_DEFAULTS = {op: d for op, (d, _, _) in UNARY.items() if d is not None}

for _op, (_, _fn, _act) in UNARY.items():
    ir_op(_op, elementwise=True, pointwise=_fn, activation=_act)


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
