"""Attribute records shared by several ops."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Activation:
    """A pointwise activation, standalone or fused into Conv/ConvTranspose/Gemm/MatMul.

    kind is the ONNX op name (Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh...).
    alpha/beta carry its parameters: LeakyRelu alpha; Clip min=alpha, max=beta;
    HardSigmoid alpha, beta.
    """

    kind: str
    alpha: float = 0.0
    beta: float = 0.0


@dataclass(frozen=True)
class UnaryAttrs:
    """Attributes of a standalone pointwise op (see Activation; ``approximate`` for Gelu)."""

    alpha: float = 0.0
    beta: float = 0.0
    approximate: str = "none"
