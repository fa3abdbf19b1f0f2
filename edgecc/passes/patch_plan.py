"""Patch-based execution (MCUNetV2): run the memory-heavy first stage of a CNN tile by tile.

Before: a planned graph whose first layers hold the largest activations. After: the stage (a
run of QConv / QLut / QAdd / QuantizeLinear nodes, NCHW, 2-D) is replaced by one copy of its
nodes per tile of the stage's output, on tile-sized tensors:

  * ``TileCopy`` cuts each layer's input window out of the full stage input (or out of a larger
    tile when a consumer needs less than its producer computed, e.g. the residual of a QAdd);
  * each QConv runs on its exact receptive field: the original padding on the sides that touch
    the image border, none inside (the halo supplies the data), as per-side ``pads``;
  * ``TilePaste`` writes each tile's output into the full stage output tensor.

Every value of the stage output is computed by the same kernel from the same integers as
layer by layer, so the result is bit-exact; halos are recomputed by neighbouring tiles (the
extra MACs). The tiles are ordinary IR nodes, so the memory planner sees that only one tile's
intermediates are live at a time. Code size grows with tiles x layers (one specialized C
function per tile node).

``plan_patches`` tries every valid stage end and grid up to 8x8 and keeps the smallest arena
(peak SRAM), ties broken by fewer extra MACs.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..ir import Graph, Node, TensorType
from ..ir.ops import op_macs
from ..ir.ops.tile_ops import TileAttrs
from .memory_plan import live_lower_bound, node_live_bytes, plan_memory

Region = Tuple[Tuple[int, int], Tuple[int, int]]  # ((h0, h1), (w0, w1)), half-open
TILE_OPS = ("QConv", "QLut", "QAdd", "QuantizeLinear")


@dataclass
class PatchPlan:
    start: int                  # index of the first stage node in the original graph
    end: int                    # index of the last stage node (its output is the stage output)
    grid: Tuple[int, int]       # tiles along H and W of the stage output
    stage_output: str
    arena_before: int
    arena_after: int
    macs_before: int            # MACs of the stage, layer by layer
    extra_macs: int             # MACs the halos add
    graph: Graph                # the patched graph
    model_macs: int = 0         # MACs of the whole graph, layer by layer
    # two stages or more (patch_split.py): (first node, last node, grid) each, in order;
    # start..end then spans them all and grid is the first one's
    stages: Tuple[Tuple[int, int, Tuple[int, int]], ...] = ()
    extra_cost: float = 0.0     # the halos' extra cost when the search weighed one (driver)

    def describe(self) -> str:
        pct = 100.0 * self.extra_macs / max(self.macs_before, 1)
        grids = ("grid " + " then ".join(f"{g[0]}x{g[1]} (nodes {a}..{b})"
                                         for a, b, g in self.stages)
                 if self.stages else f"grid {self.grid[0]}x{self.grid[1]}")
        return (f"patch stage nodes {self.start}..{self.end} (split after "
                f"'{self.stage_output}'), "
                f"{grids}: arena {self.arena_before:,} B -> "
                f"{self.arena_after:,} B, extra MACs {self.extra_macs:,} "
                f"(+{pct:.1f}% of the stage, "
                f"+{100.0 * self.extra_macs / max(self.model_macs, 1):.1f}% of the model)")


_TILE_TENSOR = re.compile(r"#(t\d+(c\d+)?|paste\d+)(_nhwc(_\d+)?)?$")
TILE_MOVES = ("TileCopy", "TilePaste", "TileCopyNHWC", "TilePasteNHWC")


def is_tile_node(node: Node) -> bool:
    """A node of a patched stage: a tile copy/paste, or a layer run on one tile (its output
    is a tile tensor, named ``<tensor>#t<k>`` by patch_graph, ``..._nhwc`` after the layout
    pass)."""
    return node.op in TILE_MOVES or any(o and _TILE_TENSOR.search(o) for o in node.outputs)


def _rank4(graph: Graph, name: str) -> bool:
    return len(graph.types[name].shape) == 4


def _supported(graph: Graph, node: Node) -> bool:
    if node.op not in TILE_OPS or len([o for o in node.outputs if o]) != 1:
        return False
    acts = [i for i in node.inputs[:1 if node.op == "QConv" else None]
            if i and i not in graph.constants]
    if not all(_rank4(graph, t) for t in acts + [node.outputs[0]]):
        return False
    if node.op == "QConv":
        return len(node.attrs.kernel) == 2
    if node.op == "QuantizeLinear":
        q = graph.types[node.outputs[0]].quant
        return q is not None and len(q.scale) == 1
    shapes = {graph.types[t].shape for t in acts + [node.outputs[0]]}
    return len(shapes) == 1  # no broadcasting inside a tile


def stage_candidates(graph: Graph, start: int) -> List[int]:
    """Indices e such that nodes[start..e] form a valid stage: supported ops, and the output of
    nodes[e] is the only tensor of the stage read after it."""
    ends = []
    consumers: Dict[str, List[int]] = {}
    for idx, n in enumerate(graph.nodes):
        for i in n.inputs:
            if i:
                consumers.setdefault(i, []).append(idx)
    produced: List[str] = []
    for e in range(start, len(graph.nodes)):
        node = graph.nodes[e]
        if not _supported(graph, node):
            break
        produced.append(node.outputs[0])
        out = node.outputs[0]
        inner = produced[:-1]
        if any(t in graph.outputs or max(consumers.get(t, [e])) > e for t in inner):
            continue
        if out in graph.outputs:
            continue
        ends.append(e)
    return ends


def _splits(size: int, parts: int) -> List[Tuple[int, int]]:
    edges = [k * size // parts for k in range(parts + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def _conv_need(attrs, out_region: Region, in_shape) -> Region:
    need = []
    for ax in range(2):
        (o0, o1), k, s, d, p = (out_region[ax], attrs.kernel[ax], attrs.strides[ax],
                                attrs.dilations[ax], attrs.pads[ax])
        size = in_shape[2 + ax]
        need.append((max(0, o0 * s - p), min(size, (o1 - 1) * s - p + (k - 1) * d + 1)))
    return tuple(need)


def _union(a: Optional[Region], b: Region) -> Region:
    if a is None:
        return b
    return tuple((min(x[0], y[0]), max(x[1], y[1])) for x, y in zip(a, b))


def _tile_conv_attrs(attrs, in_region: Region, out_region: Region):
    pb, pe = [], []
    for ax in range(2):
        (n0, n1), (o0, o1) = in_region[ax], out_region[ax]
        s, eff = attrs.strides[ax], (attrs.kernel[ax] - 1) * attrs.dilations[ax] + 1
        b = n0 - (o0 * s - attrs.pads[ax])
        e = max(0, (o1 - o0 - 1) * s + eff - (n1 - n0) - b)
        assert b >= 0 and (n1 - n0 + b + e - eff) // s + 1 == o1 - o0, (attrs, in_region)
        pb.append(b)
        pe.append(e)
    return dataclasses.replace(attrs, pads=tuple(pb + pe))


def patch_graph(graph: Graph, start: int, end: int, grid: Tuple[int, int],
                label: str = "") -> Graph:
    """The graph with nodes[start..end] run tile by tile on a ``grid`` of the stage output.
    ``label``: in the names of the tile copy/paste nodes (one per stage of a graph)."""
    stage = graph.nodes[start:end + 1]
    inside = {n.outputs[0] for n in stage}
    y_name = stage[-1].outputs[0]
    y_t = graph.types[y_name]
    types = dict(graph.types)
    nodes: List[Node] = []
    tiles = [(r, c) for r in _splits(y_t.shape[2], grid[0]) for c in _splits(y_t.shape[3], grid[1])]
    acc = ""
    for k, tile in enumerate(tiles):
        tag = f"#t{k}"
        regions: Dict[str, Region] = {y_name: tile}
        for node in reversed(stage):  # what each tensor must hold for this tile
            out_r = regions[node.outputs[0]]
            acts = [i for i in node.inputs[:1 if node.op == "QConv" else None]
                    if i and i not in graph.constants]
            for i in acts:
                need = (_conv_need(node.attrs, out_r, graph.types[i].shape)
                        if node.op == "QConv" else out_r)
                if i in inside:
                    regions[i] = _union(regions.get(i), need)
        held: Dict[str, Tuple[str, Region]] = {}  # tensor -> (tile tensor, its region)
        crops: Dict[Tuple[str, Region], str] = {}

        def window(t: str, need: Region) -> str:
            """A tensor holding exactly region ``need`` of t (cropping when necessary)."""
            if t in held:
                src, src_r = held[t]
            else:
                full = graph.types[t].shape
                src, src_r = t, ((0, full[2]), (0, full[3]))
            if src_r == need:
                return src
            if (t, need) not in crops:
                name = f"{t}{tag}c{len(crops)}"
                tt = graph.types[t]
                types[name] = TensorType(tt.dtype, tt.shape[:2] + (need[0][1] - need[0][0],
                                                                   need[1][1] - need[1][0]),
                                         tt.quant)
                nodes.append(Node("TileCopy", (src,), (name,),
                                  TileAttrs((need[0][0] - src_r[0][0], need[1][0] - src_r[1][0])),
                                  name=f"tilecopy{label}{tag}c{len(crops)}",
                                  origin=stage[0].origin))
                crops[(t, need)] = name
            return crops[(t, need)]

        for node in stage:
            out = node.outputs[0]
            out_r = regions[out]
            ins = list(node.inputs)
            attrs = node.attrs
            if node.op == "QConv":
                need = _conv_need(attrs, out_r, graph.types[ins[0]].shape)
                ins[0] = window(ins[0], need)
                attrs = _tile_conv_attrs(attrs, need, out_r)
            else:
                ins = [window(i, out_r) if i and i not in graph.constants else i for i in ins]
            name = f"{out}{tag}"
            ot = graph.types[out]
            types[name] = TensorType(ot.dtype, ot.shape[:2] + (out_r[0][1] - out_r[0][0],
                                                               out_r[1][1] - out_r[1][0]), ot.quant)
            nodes.append(node.replace(inputs=tuple(ins), outputs=(name,), attrs=attrs,
                                      name=f"{node.name}{tag}"))
            held[out] = (name, out_r)
        pasted = y_name if k == len(tiles) - 1 else f"{y_name}#paste{k}"
        types[pasted] = y_t
        nodes.append(Node("TilePaste", (acc, held[y_name][0]), (pasted,),
                          TileAttrs((tile[0][0], tile[1][0])), name=f"tilepaste{label}{tag}",
                          origin=stage[-1].origin))
        acc = pasted
    new = Graph(graph.name, graph.nodes[:start] + nodes + graph.nodes[end + 1:],
                list(graph.inputs), list(graph.outputs), types, dict(graph.constants),
                graph.source)
    new.verify()
    return new


def stage_start(graph: Graph, include_quantize: bool = True) -> int:
    """The first stage node: node 0, or the first node after the input QuantizeLinear nodes."""
    if include_quantize:
        return 0
    k = 0
    while k < len(graph.nodes) and graph.nodes[k].op == "QuantizeLinear":
        k += 1
    return k


def strip_input_quantize(graph: Graph) -> Graph:
    """The graph with its input QuantizeLinear removed: the caller passes the int8 image (as
    an MCU camera pipeline does), so no float copy of it sits in the arena."""
    q = graph.nodes[0] if graph.nodes else None
    if q is None or q.op != "QuantizeLinear" or q.inputs[0] not in graph.inputs:
        return graph
    inputs = [q.outputs[0] if i == q.inputs[0] else i for i in graph.inputs]
    return dataclasses.replace(graph, nodes=graph.nodes[1:], inputs=inputs)


def arena_of(graph: Graph, external_inputs: bool = False, allow_inplace=True) -> int:
    """Arena bytes of the plan; ``external_inputs``: as if kernels read the graph inputs from
    the caller's buffers instead of a copy in the arena."""
    if external_inputs:
        graph = dataclasses.replace(graph, inputs=[])
    return plan_memory(graph, allow_inplace).arena_bytes


def _stage_macs(graph: Graph, nodes: Sequence[Node]) -> int:
    return sum(op_macs(graph, n) for n in nodes)


def plan_patches(graph: Graph, sizes: Sequence[int] = range(1, 9), include_quantize: bool = True,
                 external_inputs: bool = False, max_stage: int = 24,
                 ends: Optional[Sequence[int]] = None,
                 grids: Optional[Sequence[Tuple[int, int]]] = None,
                 measure: Optional[Callable[[Graph], int]] = None,
                 rerank: int = 4, max_extra_macs: Optional[int] = None,
                 allow_inplace=True, cost: Optional[Callable] = None,
                 max_extra_cost: Optional[float] = None) -> Optional[PatchPlan]:
    """The stage end and grid (rows x columns, each in ``sizes``; or only ``grids``) with the
    smallest arena, ties broken by fewer extra MACs; None when no patched plan beats layer by
    layer. ``max_extra_macs``: only plans whose halos add at most that many MACs.
    ``allow_inplace``: the search's memory plans (memory_plan.plan_memory's option; e.g.
    "elementwise" for a target whose convolutions cannot run in place). ``cost(graph, node)``
    (e.g. estimated instructions, targets/costs.py) with ``max_extra_cost``: only plans whose
    tiles cost at most that much more than the stage layer by layer.

    The search measures the portable (generic) plan. A candidate whose lower bound (bytes live
    around one node) is already above the ``rerank``-th best arena found is not placed: it
    cannot win. ``measure(graph) -> arena bytes`` is the target's own measure (e.g. NHWC plus
    CMSIS-NN scratch on Cortex-M): the ``rerank`` best candidates are ranked again by it, and
    the plan's arenas are in its terms."""
    start = stage_start(graph, include_quantize)
    before = arena_of(graph, external_inputs, allow_inplace)
    top: List[Tuple[int, int, int, PatchPlan]] = []  # (arena, extra MACs, seq, plan), best first
    cands = [e for e in stage_candidates(graph, start) if e - start < max_stage]
    seq = 0  # search order: the last tie-break
    model_macs = _stage_macs(graph, graph.nodes)
    # The nodes after a stage keep their liveness, so their peak bounds every grid of that
    # stage from below: try the most promising stage ends first, and skip hopeless ones.
    view = dataclasses.replace(graph, inputs=[]) if external_inputs else graph
    live = node_live_bytes(view, allow_inplace)
    after = {e: max(live[e + 1:], default=0) for e in cands}
    for e in sorted((cands if ends is None else [e for e in cands if e in ends]),
                    key=lambda e: (after[e], e)):
        if len(top) >= rerank and after[e] > top[-1][0]:
            continue
        macs = _stage_macs(graph, graph.nodes[start:e + 1])
        y = graph.types[graph.nodes[e].outputs[0]].shape
        pairs = grids if grids is not None else [(a, b) for a in sizes for b in sizes]
        for grid in (g for g in pairs if g[0] * g[1] > 1):
            if grid[0] > y[2] or grid[1] > y[3]:
                continue
            patched = patch_graph(graph, start, e, grid)
            view = dataclasses.replace(patched, inputs=[]) if external_inputs else patched
            worst = top[-1][0] if len(top) >= rerank else None
            if worst is not None and live_lower_bound(view, allow_inplace) > worst:
                continue
            n_new = len(patched.nodes) - (len(graph.nodes) - (e + 1 - start))
            extra = _stage_macs(patched, patched.nodes[start:start + n_new]) - macs
            if max_extra_macs is not None and extra > max_extra_macs:
                continue
            extra_cost = 0.0
            if cost is not None:
                extra_cost = (sum(cost(patched, n) for n in patched.nodes[start:start + n_new])
                              - sum(cost(graph, n) for n in graph.nodes[start:e + 1]))
                if max_extra_cost is not None and extra_cost > max_extra_cost:
                    continue
            arena = plan_memory(view, allow_inplace).arena_bytes
            plan = PatchPlan(start, e, grid, graph.nodes[e].outputs[0], before, arena,
                             macs, extra, patched, model_macs, extra_cost=extra_cost)
            seq += 1
            top = sorted(top + [(arena, extra, seq, plan)], key=lambda t: t[:3])[:rerank]
    if measure is not None and top:
        before = measure(graph)
        ranked = []
        for arena, extra, seq, plan in top:
            arena = measure(plan.graph)
            ranked.append((arena, extra, seq, dataclasses.replace(
                plan, arena_before=before, arena_after=arena)))
        top = sorted(ranked, key=lambda t: t[:3])
    if not top or top[0][0] >= before:
        return None
    return top[0][3]
