"""The memory plan of a compiled model as typed records: where each tensor sits in the arena,
from which node to which node it lives, the kernel scratch, and the live bytes per node.

Read from a ``CompileResult`` (its graph and ``passes.memory_plan.MemoryPlan``); nothing is
re-planned. Definitions:

  * a tensor lives from the node that writes it (``first_node``) to the last node that reads
    it (``last_node``); a graph output until the last node, an output nobody reads only at
    its own node;
  * ``size`` is the bytes the arena reserves for it: its bytes rounded up to the arena
    alignment. Tensors of one ``buffer`` share those bytes (a Reshape alias, an elementwise
    op written in place); their lifetimes touch at one node at most;
  * ``live_bytes[i]``: the bytes of the buffers (and kernel scratch) live at node ``i`` in the
    placement the planner chose, each buffer counted once. The placement keeps buffers that
    are live at the same node apart, so ``arena_bytes >= max(live_bytes)``; ``lower_bound`` is
    the planner's bound (with in-place sharing), so also ``max(live_bytes) >= lower_bound``.

Graph inputs, and aliases of them, are not in the arena (kernels read the caller's buffers):
``external`` maps each such tensor to its graph input.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List

from .passes.memory_plan import live_bytes_per_node

SCRATCH_PREFIX = "\0scratch"  # how passes/memory_plan.py names kernel scratch buffers


@dataclass
class TensorPlacement:
    name: str
    offset: int       # bytes from the start of the arena
    size: int         # bytes reserved (nbytes rounded up to the alignment)
    nbytes: int       # the tensor's own bytes
    first_node: int   # index of the node that writes it
    last_node: int    # index of the last node that reads it (graph output: the last node)
    buffer: int       # tensors with the same buffer share their bytes


@dataclass
class ScratchPlacement:
    node: int         # the only node that uses it
    offset: int
    size: int


@dataclass
class MemoryReport:
    arena_bytes: int
    lower_bound: int
    peak_node_index: int
    peak_layer: str
    live_bytes: List[int]                  # per node, in node order
    tensors: List[TensorPlacement]         # in the order the nodes write them
    scratch: List[ScratchPlacement] = field(default_factory=list)  # in node order
    external: Dict[str, str] = field(default_factory=dict)  # tensor -> graph input

    @property
    def peak_bytes(self) -> int:
        return self.live_bytes[self.peak_node_index] if self.live_bytes else 0

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)


def _lifetimes(graph) -> Dict[str, List[int]]:
    """tensor -> [first node, last node] for every tensor a node writes."""
    last = len(graph.nodes) - 1
    span: Dict[str, List[int]] = {}
    for idx, node in enumerate(graph.nodes):
        for i in node.inputs:
            if i in span:
                span[i][1] = idx
        for o in node.outputs:
            if o:
                span[o] = [idx, idx]
    for o in graph.outputs:
        if o in span:
            span[o][1] = last
    return span


def memory_report(result) -> MemoryReport:
    """The report of ``result`` (anything with ``.graph`` and ``.plan``, e.g. a CompileResult)."""
    graph, plan = result.graph, result.plan
    buffer_of = {t: bi for bi, b in enumerate(plan.buffers) for t in b.tensors}
    span = _lifetimes(graph)
    tensors = [
        TensorPlacement(o, plan.offsets[o], plan.buffers[buffer_of[o]].size,
                        graph.types[o].nbytes, span[o][0], span[o][1], buffer_of[o])
        for node in graph.nodes for o in node.outputs if o and o in plan.offsets]
    scratch = sorted((ScratchPlacement(int(b.tensors[0][len(SCRATCH_PREFIX):]), b.offset, b.size)
                      for b in plan.buffers if b.tensors[0].startswith(SCRATCH_PREFIX)),
                     key=lambda s: s.node)
    live = live_bytes_per_node(plan.buffers, len(graph.nodes)) if graph.nodes else []
    peak = max(range(len(live)), key=lambda i: live[i]) if live else 0
    return MemoryReport(plan.arena_bytes, plan.lower_bound, peak,
                        graph.nodes[peak].name if graph.nodes else "", live, tensors, scratch,
                        {t: i for t, i in sorted(plan.external.items())})

