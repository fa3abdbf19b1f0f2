"""A SIMD backend's NHWC rule (x86, neon): passes/layout_nhwc.py's conversion, applied only to
the nodes one of the backend's kernels takes. A kernel module states what it takes with
``@RULE.accepts("Conv")`` on a predicate over the NCHW graph and node; a node goes NHWC when
one predicate of its op accepts it, so every NHWC node the pass leaves has a kernel of that
backend and every other node keeps the portable kernels' NCHW. The target record names the
backend's ``layout:to_nhwc``."""
from __future__ import annotations

import importlib
from typing import Callable, Dict, List

import numpy as np

from ..ir import DType, Graph, Node
from ..ir.ops.elementwise import BINARY_NUMPY, UNARY
from ..passes import layout_nhwc

# the float ops that go NHWC on every SIMD backend with float convolutions: see the predicates
# at the end (register them with ``RULE.accepts(*FOLLOWS_NHWC)(float_follows_nhwc)``)
FOLLOWS_NHWC = (*UNARY, *BINARY_NUMPY)


class LayoutRule:
    def __init__(self, package: str):
        self.package = package  # the backend package, imported so its kernel modules register
        self.by_op: Dict[str, List[Callable[[Graph, Node], bool]]] = {}

    def accepts(self, *ops: str):
        """Marks a predicate (graph, NCHW node) -> bool: a kernel takes the node in NHWC."""
        def mark(fn):
            for op in ops:
                self.by_op.setdefault(op, []).append(fn)
            return fn
        return mark

    def convertible(self, graph: Graph, node: Node) -> bool:
        importlib.import_module(self.package)
        return any(accept(graph, node) for accept in self.by_op.get(node.op, ()))

    def to_nhwc(self, graph: Graph) -> Graph:
        return layout_nhwc.to_nhwc(graph, convertible=self.convertible)


def float_follows_nhwc(graph: Graph, node: Node) -> bool:
    """A float32 pointwise op (Add, Relu...) whose runtime inputs all have its output's shape
    and whose constant inputs are single values computes the same in NHWC: the layout pass
    lets it follow NHWC inputs (the portable kernel runs it) instead of transposing them back
    (a residual Add between two convolutions, which the layout pass then fuses)."""
    y_t = graph.types[node.outputs[0]]
    for name in node.inputs:
        if not name:
            continue
        t = graph.types[name]
        if t.dtype != DType.FLOAT32 or (t.shape != y_t.shape if name not in graph.constants
                                        else int(np.prod(t.shape)) != 1):
            return False
    return y_t.dtype == DType.FLOAT32 and y_t.rank == 4


def float_average_pool(graph: Graph, node: Node) -> bool:
    """A float32 4-D AveragePool: passes/layout_nhwc.py turns it into a ReduceMean over H and
    W of its NHWC input when it is global (no transpose)."""
    return graph.types[node.inputs[0]].dtype == DType.FLOAT32
