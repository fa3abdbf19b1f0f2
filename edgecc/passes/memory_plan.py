"""Static memory plan: every intermediate tensor gets an offset in one arena.

Before: a graph in execution order. After (a ``MemoryPlan``, the graph is unchanged): buffer
offsets such that two buffers whose lifetimes overlap never overlap in the arena.

Graph inputs are not in the arena: kernels read them directly from the caller's (const)
buffers. An alias of a graph input (Reshape of an input, ...) points into the caller's buffer
too (``MemoryPlan.external``: tensor -> the graph input it is the bytes of); no node ever
writes such a tensor, and no in-place update targets it.

Buffers. Tensors are grouped into buffers first:
  * alias ops (Reshape/Flatten/Squeeze/Unsqueeze) give their output the input's buffer;
  * an elementwise op (same shape and dtype in and out, output i reads input i only) writes
    in place into an input buffer whose last use is this node (exact: each element is read
    before it is overwritten, and nothing else reads the buffer later).
A buffer lives from the node that first writes it to the last node that reads any of its
tensors; graph outputs until after the last node.

Placement is greedy-by-size, as in TFLite Micro's planner: largest buffer first, at the lowest
offset that does not collide with an already placed buffer of overlapping lifetime. A second
order (by first use) is also tried, and both orders on the buffers without in-place merging;
the smallest arena is kept, so the plan is never worse than ``greedy_by_size_arena``.

Lower bound: the largest, over nodes, of the bytes of all buffers live at that node (its inputs,
its outputs and everything live across it), with in-place merging. No plan can use less.
``live_bytes`` and ``lower_bound`` always count the merged buffers, also in the rare case that
the unmerged ``buffers`` place better.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..compiler.registry import op_info
from ..ir import Graph

ALIGN = 16


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Buffer:
    tensors: List[str]
    size: int
    start: int  # index of first node that writes it
    end: int    # index of last node that reads it (len(nodes): graph output)
    offset: int = -1


@dataclass
class MemoryPlan:
    offsets: Dict[str, int]            # tensor -> arena offset
    buffers: List[Buffer]
    arena_bytes: int
    lower_bound: int
    live_bytes: List[int] = field(default_factory=list)  # per node
    scratch_offsets: Dict[int, int] = field(default_factory=dict)  # node index -> offset
    external: Dict[str, str] = field(default_factory=dict)  # tensor -> graph input (not arena)

    def offset(self, tensor: str) -> int:
        return self.offsets[tensor]

    def in_arena(self, tensor: str) -> bool:
        return tensor in self.offsets


def external_tensors(graph: Graph) -> Dict[str, str]:
    """Graph inputs and aliases of them (through any chain): tensor -> graph input."""
    ext = {name: name for name in graph.inputs}
    for n in graph.nodes:
        outs = [o for o in n.outputs if o]
        if op_info(n.op).alias and n.inputs and n.inputs[0] in ext and len(outs) == 1:
            ext[outs[0]] = ext[n.inputs[0]]
    return ext


def _build_buffers(graph: Graph, allow_inplace: bool = True) -> Tuple[List[Buffer], Dict[str, int]]:
    nodes = graph.nodes
    external = external_tensors(graph)
    end_of_graph = len(nodes)
    buf_of: Dict[str, int] = {}
    buffers: List[Buffer] = []

    last_use: Dict[str, int] = {}
    for idx, n in enumerate(nodes):
        for i in n.inputs:
            if i:
                last_use[i] = idx
    for o in graph.outputs:
        last_use[o] = end_of_graph

    def new_buffer(tensor: str, start: int) -> None:
        buf_of[tensor] = len(buffers)
        buffers.append(Buffer([tensor], _align(graph.types[tensor].nbytes), start,
                              max(start, last_use.get(tensor, start))))

    def join(tensor: str, buf: int) -> None:
        buf_of[tensor] = buf
        b = buffers[buf]
        b.tensors.append(tensor)
        b.end = max(b.end, last_use.get(tensor, b.end))

    for idx, n in enumerate(nodes):
        info = op_info(n.op)
        outs = [o for o in n.outputs if o]
        if any(o in external for o in outs):
            if all(o in external for o in outs):
                continue  # an alias of a graph input: the caller's bytes, no buffer
            raise ValueError(f"node '{n.name}' ({n.op}) writes a graph input")
        src = n.inputs[0] if n.inputs else ""
        if info.alias and src in buf_of and len(outs) == 1:
            join(outs[0], buf_of[src])
            continue
        placed = False
        if allow_inplace and info.elementwise and len(outs) == 1:
            out_t = graph.types[outs[0]]
            for i in n.inputs:
                if not i or i not in buf_of:
                    continue
                b = buffers[buf_of[i]]
                same_buf_inputs = [j for j in n.inputs if j and buf_of.get(j) == buf_of[i]]
                if (b.end == idx and graph.types[i].shape == out_t.shape
                        and graph.types[i].dtype.itemsize == out_t.dtype.itemsize
                        and all(graph.types[j].shape == out_t.shape for j in same_buf_inputs)
                        and b.size == _align(out_t.nbytes)):
                    join(outs[0], buf_of[i])
                    placed = True
                    break
        if not placed:
            for o in outs:
                new_buffer(o, idx)
    return buffers, buf_of


def _place(buffers: List[Buffer], order: List[int]) -> int:
    n_steps = max((b.end for b in buffers), default=0) + 1
    live_at: List[List[int]] = [[] for _ in range(n_steps)]  # step -> placed buffers live then
    top = 0
    for bi in order:
        b = buffers[bi]
        steps = range(max(b.start, 0), b.end + 1)
        clashes = sorted({p for t in steps for p in live_at[t]},
                         key=lambda p: (buffers[p].offset, p))
        offset = 0
        for p in clashes:
            if offset + b.size <= buffers[p].offset:
                break
            offset = max(offset, buffers[p].offset + buffers[p].size)
        b.offset = offset
        for t in steps:
            live_at[t].append(bi)
        top = max(top, offset + b.size)
    return top


def live_bytes_per_node(buffers: List[Buffer], n_nodes: int) -> List[int]:
    live = [0] * max(n_nodes, 1)
    for b in buffers:
        for idx in range(max(b.start, 0), min(b.end, n_nodes - 1) + 1):
            live[idx] += b.size
    return live


def _orders(buffers: List[Buffer]) -> List[List[int]]:
    return [
        sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].start, i)),
        sorted(range(len(buffers)), key=lambda i: (buffers[i].start, -buffers[i].size, i)),
    ]


def _add_scratch(buffers: List[Buffer], scratch: Dict[int, int]) -> None:
    """Kernel scratch: a buffer live only during its node."""
    for idx, nbytes in sorted(scratch.items()):
        if nbytes > 0:
            buffers.append(Buffer([f"\0scratch{idx}"], _align(nbytes), idx, idx))


def plan_memory(graph: Graph, allow_inplace: bool = True,
                scratch: Optional[Dict[int, int]] = None) -> MemoryPlan:
    """scratch: node index -> bytes of scratch memory that node's kernel needs."""
    scratch = scratch or {}
    buffers, buf_of = _build_buffers(graph, allow_inplace)
    _add_scratch(buffers, scratch)
    live = live_bytes_per_node(buffers, len(graph.nodes))
    bound = max(live) if graph.nodes else sum(b.size for b in buffers)  # arena buffers only
    candidates = [(buffers, buf_of)]
    if allow_inplace:
        # In-place merging changes lifetimes, and greedy placement is a heuristic: on a few
        # graphs the merged buffers place worse than plain greedy-by-size. Keep the better.
        plain = _build_buffers(graph, allow_inplace=False)
        _add_scratch(plain[0], scratch)
        candidates.append(plain)
    best = None
    for bufs, groups in candidates:
        for order in _orders(bufs):
            top = _place(bufs, order)
            if best is None or top < best[0]:
                best = (top, bufs, groups, [b.offset for b in bufs])
    arena, bufs, groups, offsets = best
    for b, off in zip(bufs, offsets):
        b.offset = off
    tensor_offsets = {t: bufs[bi].offset for t, bi in groups.items()}
    scratch_offsets = {int(b.tensors[0][8:]): b.offset for b in bufs
                       if b.tensors[0].startswith("\0scratch")}
    return MemoryPlan(tensor_offsets, bufs, arena, bound, live, scratch_offsets,
                      external_tensors(graph))


def live_lower_bound(graph: Graph) -> int:
    """``plan_memory(graph).lower_bound`` without placing anything (fast)."""
    buffers, _ = _build_buffers(graph)
    return max(live_bytes_per_node(buffers, len(graph.nodes))) if graph.nodes else sum(
        b.size for b in buffers)


def greedy_by_size_arena(graph: Graph) -> int:
    """TFLite Micro style reference: greedy by size, no in-place sharing."""
    buffers, _ = _build_buffers(graph, allow_inplace=False)
    return _place(buffers, sorted(range(len(buffers)),
                                  key=lambda i: (-buffers[i].size, buffers[i].start, i)))
