"""The typed graph IR (see docs/ARCHITECTURE.md)."""
from .graph import Graph, IRError, NoAttrs, Node, Origin, op_sequence
from .types import DType, QuantParams, TensorType

__all__ = ["Graph", "IRError", "Node", "NoAttrs", "Origin", "op_sequence", "DType",
           "QuantParams", "TensorType"]
from .attrs import Activation, UnaryAttrs  # noqa: E402

__all__ += ["Activation", "UnaryAttrs"]
