"""The aarch64-neon targets' layout pass: passes/layout_nhwc.py's NHWC conversion, applied only
to the nodes a NEON kernel takes (the x86 backend's rule, backends/x86/layout.py). A kernel
module states what it takes with ``@accepts("QConv")`` on a predicate over the NCHW graph and
node; a node goes NHWC when one predicate of its op accepts it, so every NHWC node this pass
leaves has a NEON kernel and every other node keeps the portable kernels' NCHW."""
from __future__ import annotations

from typing import Callable, Dict, List

from ...ir import Graph, Node
from ...passes import layout_nhwc

ACCEPTS: Dict[str, List[Callable[[Graph, Node], bool]]] = {}


def accepts(*ops: str):
    """Marks a predicate (graph, NCHW node) -> bool: a NEON kernel takes the node in NHWC."""
    def mark(fn):
        for op in ops:
            ACCEPTS.setdefault(op, []).append(fn)
        return fn
    return mark


def convertible(graph: Graph, node: Node) -> bool:
    from . import BACKEND  # noqa: F401  (imports the kernel modules, which register)
    return any(accept(graph, node) for accept in ACCEPTS.get(node.op, ()))


def to_nhwc(graph: Graph) -> Graph:
    return layout_nhwc.to_nhwc(graph, convertible=convertible)
