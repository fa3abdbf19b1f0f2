"""Fuse a pointwise activation into the Conv, ConvTranspose, Gemm or MatMul that feeds it.

Before:  t = Conv(x, W, b);  y = Relu(t)
After:   y = Conv[activation=Relu](x, W, b)

Preconditions: the producer has no activation yet; its output feeds only the activation and
is not a graph output; the activation is one of Relu, LeakyRelu, Clip (Relu6), Sigmoid,
HardSigmoid, HardSwish, Tanh; the element type is float.
Math: the kernel applies the same scalar function to each accumulator before storing it, so
results are identical to running the two ops one after the other.
"""
from __future__ import annotations

import dataclasses

from ..ir import Activation, Graph, Node
from ..ir.ops import IR_OPS
from .rewrite import Rule, View, rewrite

FUSABLE_PRODUCERS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
FUSABLE_ACTIVATIONS = tuple(op for op, info in IR_OPS.items() if info.activation)


def takes_activation(g: Graph, prod) -> bool:
    """Whether an activation reading ``prod``'s output fuses into ``prod`` (a float
    Conv/ConvTranspose/Gemm/MatMul with no activation yet whose output nothing else reads)."""
    return (prod is not None and prod.op in FUSABLE_PRODUCERS and prod.attrs.activation is None
            and g.use_count(prod.outputs[0]) == 1 and prod.outputs[0] not in g.outputs
            and g.types[prod.outputs[0]].dtype.is_float)


def _fuse(g: Graph, act: Node, view: View) -> bool:
    prod = view.producers.get(act.inputs[0])
    if not takes_activation(g, prod):
        return False
    fused = prod.replace(
        outputs=(act.outputs[0],),
        attrs=dataclasses.replace(prod.attrs, activation=Activation(
            act.op, act.attrs.alpha, act.attrs.beta)))
    g.nodes = [fused if n is prod else n for n in g.nodes if n is not act]
    return True


RULES = [Rule("activation-into-producer", FUSABLE_ACTIVATIONS, _fuse)]


def fuse_activation(graph: Graph) -> Graph:
    g = rewrite(graph, RULES)
    g.remove_unused()
    return g
