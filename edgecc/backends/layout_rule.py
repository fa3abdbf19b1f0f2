"""A SIMD backend's NHWC rule (x86, neon): passes/layout_nhwc.py's conversion, applied only to
the nodes one of the backend's kernels takes. A kernel module states what it takes with
``@RULE.accepts("Conv")`` on a predicate over the NCHW graph and node; a node goes NHWC when
one predicate of its op accepts it, so every NHWC node the pass leaves has a kernel of that
backend and every other node keeps the portable kernels' NCHW. The target record names the
backend's ``layout:to_nhwc``."""
from __future__ import annotations

import importlib
from typing import Callable, Dict, List

from ..ir import Graph, Node
from ..passes import layout_nhwc


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
