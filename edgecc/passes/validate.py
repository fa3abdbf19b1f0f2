"""Validation: every node against the rules its op declares (``OpInfo.check``).

Before: a graph as lowered (or as the passes left it)    After: the same graph, or a one-line
error naming the model, node, op, opset and the broken rule (exit 2).

Runs after the front end and again on the final graph before codegen, so a node a pass built
is held to the same rules. What a check accepts, the kernels may rely on (e.g. Conv: strides
and dilations >= 1, pads >= 0, a group dividing the channels, weights matching the input).
"""
from __future__ import annotations

from ..errors import EdgeccError
from ..ir import Graph
from ..ir.ops import op_info


def validate(graph: Graph) -> Graph:
    for node in graph.nodes:
        check = op_info(node.op).check
        broken = check(graph, node) if check else None
        if broken:
            raise EdgeccError(f"{node.origin.describe()}: {broken}")
    return graph
