"""Operator reordering: the execution order with the smallest peak of live activation bytes.

Before: nodes in the order the model gave (any topological order), e.g. a large branch computed
first and held while the other branch runs. After: the same nodes (same names, tensors and
attrs) in the topological order with the smallest peak, when that order gives a strictly smaller
arena (``plan_memory(graph).arena_bytes``); otherwise the graph unchanged. Precondition: a
verified graph (nodes in a topological order); only data edges (tensors) constrain the order.

Math (Liberis & Lane 2019, "Neural networks on microcontrollers: saving memory at inference
via operator reordering"). An order's cost is the largest, over its steps, of the bytes live at
that step: memory_plan's lower bound, with its buffers (an alias op's output is its input's
buffer; graph inputs and their aliases are outside the arena; graph outputs live to the end).
What is live when node v runs after the set S of executed nodes depends on S and v only:

    step(S, v) = live(S) + new(v) - inplace(S, v)

live(S): the buffers written by S that a node outside S reads, or that hold a graph output;
new(v): the buffers v writes; inplace(S, v): the size of v's output when memory_plan writes it
in place (v elementwise, an input's buffer of the same shape dies at v). The smallest peak of
the nodes still to run is, over the downward-closed sets S (the executable prefixes),

    best(S) = min over ready v of max(step(S, v), best(S + {v})),    best(all nodes) = 0.

The order is rebuilt from the empty set, taking at each step the first ready node (in the
original order) that keeps the optimum: the lexicographically first optimal order, so the
original order whenever it is optimal. Deterministic: no hashing order, no randomness.

Bound: the number of downward-closed sets grows exponentially with the graph's width (a
patched graph's tiles are independent chains). Past ``max_states`` sets the search stops; a
greedy order (the ready node with the smallest step, then the fewest live bytes after it, then
the original position) is still tried. Any order is kept only when its arena is strictly
smaller, so the pass never makes the arena worse. It ignores kernel scratch (added later by the
target's layout pass).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..ir import Graph
from ..ir.ops import op_info
from .memory_plan import _align, external_tensors, plan_memory

MAX_STATES = 100_000


@dataclass
class _Problem:
    """The graph as bit masks over node indices (original order) and buffers."""

    preds: List[int]           # node -> mask of the nodes it reads from
    succs: List[List[int]]     # node -> nodes reading it (ascending)
    writes: List[List[int]]    # node -> buffers it creates
    reads: List[List[int]]     # node -> arena buffers it reads
    inplace: List[List[int]]   # node -> buffers its output may take over when they die at it
    size: List[int]            # buffer -> bytes (aligned)
    readers: List[int]         # buffer -> mask of the nodes reading it
    pinned: List[bool]         # buffer holds a graph output

    def dies(self, b: int, done: int) -> bool:
        return not self.pinned[b] and not self.readers[b] & ~done

    def step(self, done: int, live: int, v: int) -> int:
        """Bytes live while v runs after the nodes in ``done`` (``live`` = live(done))."""
        new = sum(self.size[b] for b in self.writes[v])
        after = done | 1 << v
        if any(self.dies(b, after) for b in self.inplace[v]):
            new -= self.size[self.writes[v][0]]
        return live + new

    def live_after(self, done: int, live: int, v: int) -> int:
        after = done | 1 << v
        return (live + sum(self.size[b] for b in self.writes[v] if not self.dies(b, after))
                - sum(self.size[b] for b in self.reads[v] if self.dies(b, after)))

    def ready_after(self, ready: int, v: int, after: int) -> int:
        """The ready nodes (a mask) once v has run; ``after`` = the executed set with v."""
        ready &= ~(1 << v)
        for w in self.succs[v]:
            if not self.preds[w] & ~after:
                ready |= 1 << w
        return ready

    def start(self) -> int:
        return sum(1 << v for v, p in enumerate(self.preds) if not p)


def _bits(mask: int) -> List[int]:
    """The set bits of mask, ascending."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _problem(graph: Graph) -> _Problem:
    """Buffers as memory_plan._build_buffers groups them, minus the order-dependent in-place
    merges (those are ``inplace`` candidates, decided per step)."""
    types = graph.types
    external = external_tensors(graph)
    producer: Dict[str, int] = {}
    buf_of: Dict[str, int] = {}
    p = _Problem([], [[] for _ in graph.nodes], [], [], [], [], [], [])
    for k, n in enumerate(graph.nodes):
        p.preds.append(sum({1 << producer[i] for i in n.inputs if i in producer}))
        for j in {producer[i] for i in n.inputs if i in producer}:
            p.succs[j].append(k)
        outs = [o for o in n.outputs if o]
        producer.update((o, k) for o in outs)
        src = n.inputs[0] if n.inputs else ""
        new: List[int] = []
        if outs and all(o in external for o in outs):
            pass  # the caller's bytes
        elif op_info(n.op).alias and src in buf_of and len(outs) == 1:
            buf_of[outs[0]] = buf_of[src]
        else:
            for o in outs:
                buf_of[o] = len(p.size)
                new.append(len(p.size))
                p.size.append(_align(types[o].nbytes))
                p.readers.append(0)
                p.pinned.append(False)
        p.writes.append(new)
    for k, n in enumerate(graph.nodes):
        p.reads.append(sorted({buf_of[i] for i in n.inputs if i in buf_of}))
        for b in p.reads[k]:
            p.readers[b] |= 1 << k
        p.inplace.append(_inplace_candidates(graph, n, buf_of) if p.writes[k] else [])
    for o in graph.outputs:
        if o in buf_of:
            p.pinned[buf_of[o]] = True
    return p


def _inplace_candidates(graph: Graph, node, buf_of: Dict[str, int]) -> List[int]:
    """memory_plan's static in-place conditions (the dynamic one: the buffer dies here)."""
    outs = [o for o in node.outputs if o]
    if not op_info(node.op).elementwise or len(outs) != 1:
        return []
    out_t = graph.types[outs[0]]
    found = []
    for i in node.inputs:
        if i not in buf_of:
            continue
        t = graph.types[i]
        same = [j for j in node.inputs if j and buf_of.get(j) == buf_of[i]]
        if (t.shape == out_t.shape and t.dtype.bits == out_t.dtype.bits
                and all(graph.types[j].shape == out_t.shape for j in same)
                and _align(t.nbytes) == _align(out_t.nbytes)):
            found.append(buf_of[i])
    return found


def min_peak_order(graph: Graph, max_states: int = MAX_STATES) -> Optional[Tuple[int, List[int]]]:
    """(smallest peak live bytes, the lexicographically first order reaching it as indices into
    graph.nodes), or None when the graph has more than ``max_states`` downward-closed sets."""
    p = _problem(graph)
    levels = [{0: (0, p.start())}]   # executed set -> (live bytes, ready nodes), as masks
    count = 1
    for _ in graph.nodes:
        nxt: Dict[int, Tuple[int, int]] = {}
        for done, (live, ready) in levels[-1].items():
            for v in _bits(ready):
                after = done | 1 << v
                if after not in nxt:
                    nxt[after] = (p.live_after(done, live, v), p.ready_after(ready, v, after))
                    count += 1
                    if count > max_states:
                        return None
        levels.append(nxt)
    best = {(1 << len(graph.nodes)) - 1: 0}
    for level in reversed(levels[:-1]):
        for done, (live, ready) in level.items():
            best[done] = min(max(p.step(done, live, v), best[done | 1 << v])
                             for v in _bits(ready))
    order, done = [], 0
    for level in levels[:-1]:
        live, ready = level[done]
        v = next(v for v in _bits(ready)
                 if max(p.step(done, live, v), best[done | 1 << v]) <= best[0])
        order.append(v)
        done |= 1 << v
    return best[0], order


def greedy_order(graph: Graph) -> List[int]:
    """At each step the ready node with the smallest step, then the fewest live bytes after it,
    then the earliest in the original order."""
    p = _problem(graph)
    done, live, ready, order = 0, 0, p.start(), []
    while ready:
        v = min(_bits(ready), key=lambda v: (p.step(done, live, v), p.live_after(done, live, v), v))
        live = p.live_after(done, live, v)
        done |= 1 << v
        ready = p.ready_after(ready, v, done)
        order.append(v)
    return order


def reorder_for_memory(graph: Graph, max_states: int = MAX_STATES) -> Graph:
    """The graph with its nodes in the order of the smallest peak live bytes (exact search over
    the executable prefixes, greedy past ``max_states``), kept only when
    ``plan_memory(...).arena_bytes`` strictly drops; else ``graph`` itself."""
    identity = list(range(len(graph.nodes)))
    found = min_peak_order(graph, max_states)
    candidates = ([found[1]] if found else []) + [greedy_order(graph)]
    best, arena = graph, None
    for k, order in enumerate(candidates):
        if order == identity or order in candidates[:k]:
            continue
        if arena is None:
            arena = plan_memory(graph).arena_bytes
        cand = Graph(graph.name, [graph.nodes[k] for k in order], list(graph.inputs),
                     list(graph.outputs), dict(graph.types), dict(graph.constants), graph.source)
        cand_arena = plan_memory(cand).arena_bytes
        if cand_arena < arena:
            best, arena = cand, cand_arena
    best.verify()
    return best
