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
    before it is overwritten, and nothing else reads the buffer later);
  * an op with an in-place variant (``OpInfo.inplace_scratch``: a 2-D NCHW depthwise
    convolution, MCUNet's in-place depthwise) whose input 0's buffer has its last use at this
    node gets an output buffer that *shares the offset* of that input buffer
    (``Buffer.shares``), plus the variant's scratch (one output channel plane) for the node.
    The output may be smaller than the input (stride 2): the two buffers keep their own size
    and lifetime, so the input's tail is free again right after the node. The proof that the
    variant is exact is in compiler/lowering/conv.py (depthwise_inplace_scratch); the nodes
    are listed in ``MemoryPlan.inplace_nodes`` and their kernels must run the variant. A
    target's kernels may have in-place variants of other ops (``variants``, e.g. Cortex-M's
    NHWC depthwise, backends/cortex_m/depthwise_inplace.py): the same rule, with their scratch.
A buffer lives from the node that first writes it to the last node that reads any of its
tensors; graph outputs until after the last node.

Placement is greedy-by-size, as in TFLite Micro's planner: largest buffer first, at the lowest
offset that does not collide with an already placed buffer of overlapping lifetime (buffers
that share an offset are placed together, each checked against the placed buffers live with
it). A second order (by first use) is also tried, and both orders on the buffers without
in-place merging (no in-place node, no in-place scratch); the smallest arena is kept, so the
plan is never worse than ``greedy_by_size_arena``.

Lower bound: the largest, over nodes, of the bytes of all buffers live at that node (its inputs,
its outputs, kernel scratch and everything live across it), with in-place merging (buffers
sharing an offset count once, at the larger size). No plan with these in-place decisions can
use less. ``live_bytes`` and ``lower_bound`` always count the merged buffers, also in the
rare case that the unmerged ``buffers`` place better.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

from ..ir import Graph
from ..ir.ops import op_info

ALIGN = 16
Variants = Callable[[Graph, object], Optional[int]]  # (graph, node) -> in-place scratch or None


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Buffer:
    tensors: List[str]
    size: int
    start: int  # index of first node that writes it
    end: int    # index of last node that reads it (len(nodes): graph output)
    offset: int = -1
    shares: int = -1  # index of the buffer whose offset this one shares (in-place depthwise)


@dataclass
class MemoryPlan:
    offsets: Dict[str, int]            # tensor -> arena offset
    buffers: List[Buffer]
    arena_bytes: int
    lower_bound: int
    live_bytes: List[int] = field(default_factory=list)  # per node
    scratch_offsets: Dict[int, int] = field(default_factory=dict)  # node index -> offset
    external: Dict[str, str] = field(default_factory=dict)  # tensor -> graph input (not arena)
    inplace_nodes: Set[int] = field(default_factory=set)  # nodes writing over their input 0

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


def _build_buffers(graph: Graph, allow_inplace=True, variants: Optional[Variants] = None
                   ) -> Tuple[List[Buffer], Dict[str, int], Dict[int, int]]:
    """Buffers, tensor -> buffer index, and in-place node index -> its scratch bytes.
    ``allow_inplace``: True, False, or "elementwise" (no in-place variants of other ops).
    ``variants(graph, node)``: scratch bytes of the target kernel's in-place variant of the
    node, or None (then the op's own ``OpInfo.inplace_scratch``, if any)."""
    nodes = graph.nodes
    external = external_tensors(graph)
    end_of_graph = len(nodes)
    buf_of: Dict[str, int] = {}
    buffers: List[Buffer] = []
    inplace: Dict[int, int] = {}

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

    def dies_here(n, i: str, idx: int) -> bool:
        """Input i's buffer is read by nobody after node idx (nor by another of its inputs)."""
        return (i in buf_of and buffers[buf_of[i]].end == idx
                and all(buf_of.get(j) != buf_of[i] for j in n.inputs if j and j != i))

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
        if allow_inplace and info.elementwise and len(outs) == 1:
            target = _elementwise_target(graph, n, outs[0], buffers, buf_of, idx)
            if target is not None:
                join(outs[0], target)
                continue
        if allow_inplace in (True, "always") and len(outs) == 1 and dies_here(n, src, idx):
            need = variants(graph, n) if variants is not None else None
            if need is None and info.inplace_scratch:
                need = info.inplace_scratch(graph, n)
            if need is not None:
                new_buffer(outs[0], idx)
                buffers[-1].shares = buf_of[src]
                inplace[idx] = need
                continue
        for o in outs:
            new_buffer(o, idx)
    return buffers, buf_of, inplace


def _elementwise_target(graph: Graph, n, out: str, buffers: List[Buffer],
                        buf_of: Dict[str, int], idx: int) -> Optional[int]:
    """The input buffer an elementwise node may update in place, if any."""
    out_t = graph.types[out]
    for i in n.inputs:
        if not i or i not in buf_of:
            continue
        b = buffers[buf_of[i]]
        same_buf_inputs = [j for j in n.inputs if j and buf_of.get(j) == buf_of[i]]
        if (b.end == idx and graph.types[i].shape == out_t.shape
                and graph.types[i].dtype.bits == out_t.dtype.bits
                and all(graph.types[j].shape == out_t.shape for j in same_buf_inputs)
                and b.size == _align(out_t.nbytes)):
            return buf_of[i]
    return None


def share_groups(buffers: List[Buffer]) -> List[int]:
    """For each buffer, the first buffer of its group of buffers sharing one offset."""
    root = list(range(len(buffers)))
    for i, b in enumerate(buffers):
        if b.shares >= 0:
            root[i] = root[b.shares]  # shares always names an earlier buffer
    return root


def _lowest_offset(group: List[Buffer], live_at: Dict[int, List[Buffer]]) -> int:
    """Lowest offset at which no buffer of the group overlaps a placed buffer live with it
    (``live_at``: node -> placed buffers live at that node)."""
    forbidden = set()  # offsets strictly between lo and hi collide
    for b in group:
        for idx in range(b.start, b.end + 1):
            forbidden.update((p.offset - b.size, p.offset + p.size) for p in live_at.get(idx, ()))
    offset = 0
    for lo, hi in sorted(forbidden):
        if offset <= lo:
            break
        offset = max(offset, hi)
    return offset


def _place(buffers: List[Buffer], order: List[int]) -> int:
    root = share_groups(buffers)
    members: Dict[int, List[Buffer]] = {}
    for i, r in enumerate(root):
        members.setdefault(r, []).append(buffers[i])
    live_at: Dict[int, List[Buffer]] = {}
    top = 0
    for bi in order:
        group = members.pop(root[bi], None)
        if group is None:
            continue  # placed with an earlier member of its group
        offset = _lowest_offset(group, live_at)
        for b in group:
            b.offset = offset
            top = max(top, offset + b.size)
            for idx in range(b.start, b.end + 1):
                live_at.setdefault(idx, []).append(b)
    return top


def live_bytes_per_node(buffers: List[Buffer], n_nodes: int) -> List[int]:
    """Bytes live at each node; buffers sharing an offset count once, at the largest."""
    root = share_groups(buffers)
    group_live: Dict[Tuple[int, int], int] = {}
    for b, r in zip(buffers, root):
        for idx in range(max(b.start, 0), min(b.end, n_nodes - 1) + 1):
            group_live[r, idx] = max(group_live.get((r, idx), 0), b.size)
    live = [0] * max(n_nodes, 1)
    for (_, idx), size in group_live.items():
        live[idx] += size
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


def plan_memory(graph: Graph, allow_inplace=True,
                scratch: Optional[Dict[int, int]] = None,
                variants: Optional[Variants] = None) -> MemoryPlan:
    """scratch: node index -> bytes of scratch memory that node's kernel needs.
    ``allow_inplace``: True, False, "elementwise" (only elementwise ops in place) or "always"
    (True, without trying the plan with no in-place merges: tests of in-place kernels).
    ``variants``: the target kernels' in-place variants (see _build_buffers)."""
    scratch = scratch or {}
    buffers, buf_of, inplace = _build_buffers(graph, allow_inplace, variants)
    merged_scratch = dict(scratch)
    for idx, need in inplace.items():
        merged_scratch[idx] = max(merged_scratch.get(idx, 0), need)
    _add_scratch(buffers, merged_scratch)
    live = live_bytes_per_node(buffers, len(graph.nodes))
    bound = max(live) if graph.nodes else sum(b.size for b in buffers)  # arena buffers only
    candidates = [(buffers, buf_of, inplace)]
    if allow_inplace and allow_inplace != "always":
        # In-place merging changes lifetimes, and greedy placement is a heuristic: on a few
        # graphs the merged buffers place worse than plain greedy-by-size. Keep the better.
        plain = _build_buffers(graph, allow_inplace=False)
        _add_scratch(plain[0], scratch)
        candidates.append(plain)
    best = None
    for bufs, groups, nodes_inplace in candidates:
        for order in _orders(bufs):
            top = _place(bufs, order)
            if best is None or top < best[0]:
                best = (top, bufs, groups, nodes_inplace, [b.offset for b in bufs])
    arena, bufs, groups, nodes_inplace, offsets = best
    for b, off in zip(bufs, offsets):
        b.offset = off
    tensor_offsets = {t: bufs[bi].offset for t, bi in groups.items()}
    scratch_offsets = {int(b.tensors[0][8:]): b.offset for b in bufs
                       if b.tensors[0].startswith("\0scratch")}
    return MemoryPlan(tensor_offsets, bufs, arena, bound, live, scratch_offsets,
                      external_tensors(graph), set(nodes_inplace))


def node_live_bytes(graph: Graph, allow_inplace=True,
                    variants: Optional[Variants] = None) -> List[int]:
    """``plan_memory(graph, allow_inplace, variants=variants).live_bytes`` (no target
    scratch) without placing anything (fast)."""
    buffers, _, inplace = _build_buffers(graph, allow_inplace, variants)
    _add_scratch(buffers, inplace)
    return live_bytes_per_node(buffers, len(graph.nodes))


def live_lower_bound(graph: Graph, allow_inplace=True,
                     variants: Optional[Variants] = None) -> int:
    """``plan_memory(graph, allow_inplace, variants=variants).lower_bound`` (no target
    scratch), without placing."""
    return max(node_live_bytes(graph, allow_inplace, variants)) if graph.nodes else 0


def greedy_by_size_arena(graph: Graph) -> int:
    """TFLite Micro style reference: greedy by size, no in-place sharing."""
    buffers, _, _ = _build_buffers(graph, allow_inplace=False)
    return _place(buffers, sorted(range(len(buffers)),
                                  key=lambda i: (-buffers[i].size, buffers[i].start, i)))
