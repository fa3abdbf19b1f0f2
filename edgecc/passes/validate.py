"""Validation: the graph's own rules, then every node against the rules its op declares
(``OpInfo.check``).

Before: a graph as lowered (or as the passes left it)    After: the same graph, or a one-line
error naming the model, node, op, opset and the broken rule (exit 2).

Runs after the front end and again on the final graph before codegen, so a node a pass built
is held to the same rules. What a check accepts, the kernels may rely on (e.g. Conv: strides
and dilations >= 1, pads >= 0, a group dividing the channels, weights matching the input).

Graph rules: at least one output; no output or input listed twice; every tensor's dims and
byte size at most ``INDEX_MAX`` (the generated C indexes and sizes tensors with 32-bit
integers on every target; the arena is held to the same limit in ``check_arena``).
"""
from __future__ import annotations

from typing import Optional

from ..errors import EdgeccError
from ..ir import Graph
from ..ir.ops import op_info

INDEX_MAX = (1 << 31) - 1


def validate(graph: Graph) -> Graph:
    broken = graph_rules(graph)
    if broken:
        raise EdgeccError(f"{graph.source}: {broken}")
    for name in list(graph.inputs) + list(graph.constants):
        broken = size_rule(graph, name)
        if broken:
            raise EdgeccError(f"{graph.source}: {broken}")
    for node in graph.nodes:
        broken = next(filter(None, (size_rule(graph, o) for o in node.outputs if o)), None)
        if not broken:
            check = op_info(node.op).check
            broken = check(graph, node) if check else None
        if broken:
            raise EdgeccError(f"{node.origin.describe()}: {broken}")
    return graph


def graph_rules(graph: Graph) -> Optional[str]:
    if not graph.outputs:
        return "the graph has no outputs (nothing to compute)"
    for kind, names in (("output", graph.outputs), ("input", graph.inputs)):
        seen = set()
        for name in names:
            if name in seen:
                return f"graph {kind} '{name}' is listed twice"
            seen.add(name)
    return None


def size_rule(graph: Graph, name: str) -> Optional[str]:
    t = graph.types[name]
    if max(t.shape, default=0) > INDEX_MAX or t.nbytes > INDEX_MAX:
        return (f"tensor '{name}' {list(t.shape)} ({t.nbytes} bytes) exceeds {INDEX_MAX}, the "
                "largest size or dim generated code can index")
    return None


def check_arena(label: str, arena_bytes: int) -> None:
    if arena_bytes > INDEX_MAX:
        raise EdgeccError(f"{label}: the activation arena needs {arena_bytes} bytes, more than "
                          f"{INDEX_MAX}, the largest size generated code can index")
