"""Identity/Dropout removal and dead-code elimination.

remove_identities
    Before:  y = Identity(x); z = Relu(y)        After:  z = Relu(x)
    An Identity whose output is a graph output renames its producer's output instead
    (Before: y = Conv(..); out = Identity(y)   After: out = Conv(..)). It stays only where
    a graph output must copy a graph input, a constant or another graph output.
    (The front end lowers Dropout in inference mode to Identity.)

eliminate_dead_code
    Before:  a = Relu(x); b = Exp(x); return a    After:  a = Relu(x); return a
    Removes nodes none of whose outputs reach a graph output; then unused constants.
"""
from __future__ import annotations

from ..ir import Graph, Node
from .rewrite import Rule, View, rewrite


def rename_tensor(graph: Graph, old: str, new: str) -> None:
    graph.nodes = [n.replace(inputs=tuple(new if i == old else i for i in n.inputs),
                             outputs=tuple(new if o == old else o for o in n.outputs))
                   for n in graph.nodes]
    graph.types[new] = graph.types[old]


def _drop_identity(g: Graph, node: Node, view: View) -> bool:
    src, dst = node.inputs[0], node.outputs[0]
    if dst not in g.outputs:
        g.nodes.remove(node)
        g.nodes = [n.replace(inputs=tuple(src if i == dst else i for i in n.inputs))
                   for n in g.nodes]
        return True
    producer = view.producers.get(src)
    if producer is not None and src not in g.outputs and g.types[src] == g.types[dst]:
        g.nodes.remove(node)
        rename_tensor(g, src, dst)
        return True
    return False


RULES = [Rule("identity", ("Identity",), _drop_identity)]


def remove_identities(graph: Graph) -> Graph:
    g = rewrite(graph, RULES)
    g.remove_unused()
    return g


def eliminate_dead_code(graph: Graph) -> Graph:
    g = graph.copy()
    needed = set(g.outputs)
    kept = []
    for node in reversed(g.nodes):
        if any(o in needed for o in node.outputs if o):
            kept.append(node)
            needed.update(i for i in node.inputs if i)
    g.nodes = list(reversed(kept))
    g.remove_unused()
    return g
