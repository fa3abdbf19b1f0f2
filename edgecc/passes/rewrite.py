"""The rewrite engine of the local passes (identity removal, BatchNorm folding, activation
fusion, QDQ folding): an ordered list of rules run to a fixed point.

A ``Rule`` names the node ops it looks at and a function ``apply(graph, node, view)`` that
rewrites the graph around ``node`` in place and returns True, or changes nothing and returns
False. ``rewrite`` sweeps the nodes in execution order; for each node it tries that op's rules
in list order; after the first change it starts a new sweep (``view``'s producers and
consumers are those of the graph at the start of the sweep, which is the graph the rule sees
until it changes it). It stops when a sweep changes nothing. A rule listed twice (or two rules
of one name) is an error.

Before (one sweep):  nodes n0..nk, rules R(op)      After: the first n_i whose first
                                                            applicable rule changed the graph
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

from ..ir import Graph, Node


@dataclass(frozen=True)
class Rule:
    name: str
    ops: Tuple[str, ...]
    apply: Callable[[Graph, Node, "View"], bool]


class View:
    """The producers and consumers of each tensor at the start of a sweep."""

    def __init__(self, graph: Graph):
        self.producers = graph.producers()
        self.consumers = graph.consumers()


def rule_table(rules: Sequence[Rule]) -> Dict[str, List[Rule]]:
    """Op -> its rules in order; a duplicate rule or rule name is an error."""
    names = [r.name for r in rules]
    if len(set(names)) != len(names) or len({id(r.apply) for r in rules}) != len(rules):
        dup = sorted({n for n in names if names.count(n) > 1}) or ["(the same function)"]
        raise ValueError(f"rewrite rule registered twice: {', '.join(dup)}")
    table: Dict[str, List[Rule]] = {}
    for r in rules:
        for op in r.ops:
            table.setdefault(op, []).append(r)
    return table


def rewrite(graph: Graph, rules: Sequence[Rule]) -> Graph:
    """A copy of ``graph`` rewritten by ``rules`` to a fixed point."""
    table = rule_table(rules)
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        view = View(g)
        for node in list(g.nodes):
            if any(r.apply(g, node, view) for r in table.get(node.op, ())):
                changed = True
                break
    return g
