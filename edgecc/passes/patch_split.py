"""Patch plans of two stages: the patched first stage split in two, each run tile by tile on
its own grid (issue 12; patch_plan.py runs one stage).

Before: a planned graph. After: nodes[start..mid] run tile by tile on grid A and write the
full output of node ``mid``; nodes[mid + 1..end] then run tile by tile on grid B, reading it
(patch_plan.patch_graph once per stage). A stage's halos grow with its depth (each k x k layer
adds k - 1 rows and columns, each stride doubles what is below it), so two short stages
recompute far fewer values than one long one; what it costs is the full tensor between the
stages, live while both run (MobileNetV2's 36x36x8 block output: 10 KiB). Each stage is
bit-exact for the reasons patch_plan.py gives, so the whole is.

``plan_two_stages`` scores every split cheaply before placing any buffer: what is live at a
node of stage A does not depend on how stage B runs and the reverse, so the peak of a pair of
grids is the larger of the peak of stage A patched alone on its grid, of stage B patched alone
on its grid, and of the layer-by-layer nodes after the stages; its cost is the sum of the two
stages' extra ``cost``. The plans whose peak bound is smallest under each cost are then
placed (``measure``).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..ir import Graph
from .memory_plan import node_live_bytes
from .patch_plan import (PatchPlan, _stage_macs, patch_graph, stage_candidates, stage_start)

Stage = Tuple[int, int, Tuple[int, int]]  # (first node, last node, grid) in the original graph


def patch_stages(graph: Graph, stages: Sequence[Stage]) -> Graph:
    """The graph with each stage run tile by tile (stages in order, not overlapping; a 1x1
    grid leaves a stage layer by layer)."""
    out = graph
    for k, (start, end, grid) in sorted(enumerate(stages), key=lambda s: -s[1][0]):
        if grid[0] * grid[1] > 1:  # the later stage first: earlier indices stay valid
            out = patch_graph(out, start, end, grid, label=f"s{k}" if k else "")
    return out


def _stage_facts(graph: Graph, start: int, end: int, grid, view, allow_inplace, variants,
                 cost: Callable) -> Tuple[int, float, int]:
    """(peak live bytes at the stage's nodes, extra cost, extra MACs) of nodes[start..end]
    patched alone on ``grid``."""
    patched = patch_graph(graph, start, end, grid)
    n_new = len(patched.nodes) - (len(graph.nodes) - (end + 1 - start))
    live = node_live_bytes(view(patched), allow_inplace, variants)
    new = patched.nodes[start:start + n_new]
    old = graph.nodes[start:end + 1]
    extra_cost = sum(cost(patched, n) for n in new) - sum(cost(graph, n) for n in old)
    extra_macs = _stage_macs(patched, new) - _stage_macs(graph, old)
    return max(live[start:start + n_new]), extra_cost, extra_macs


def plan_two_stages(graph: Graph, cost: Callable, sizes: Sequence[int] = range(1, 7),
                    include_quantize: bool = True, external_inputs: bool = False,
                    max_stage: int = 24, allow_inplace=True, variants=None,
                    measure: Optional[Callable[[Graph], int]] = None,
                    max_extra_cost: Optional[float] = None, keep: int = 3) -> List[PatchPlan]:
    """Two-stage plans (stage A = nodes[start..mid] on one grid, stage B = nodes[mid + 1..end]
    on another, each of ``sizes`` x ``sizes`` tiles, B possibly 1x1), best first: the smallest
    arena (``measure``, else the portable plan), ties broken by the smaller extra ``cost``
    (``cost(graph, node)``, e.g. estimated instructions); only those whose extra cost is at most
    ``max_extra_cost``. ``keep``: how many of the best bounds are placed."""
    from .memory_plan import plan_memory
    start = stage_start(graph, include_quantize)

    def view(g: Graph) -> Graph:
        return dataclasses.replace(g, inputs=[]) if external_inputs else g

    live = node_live_bytes(view(graph), allow_inplace, variants)
    grids = [(a, b) for a in sizes for b in sizes]

    def nbytes(i: int) -> int:
        return graph.types[graph.nodes[i].outputs[0]].nbytes

    def fitting(i: int):
        y = graph.types[graph.nodes[i].outputs[0]].shape
        return [g for g in grids if g[0] * g[1] > 1 and g[0] <= y[2] and g[1] <= y[3]]

    # pairs by a lower bound of their peak (the layers after them, and the two full tensors
    # around stage B, live while it runs), so that hopeless pairs are never patched
    pairs = []
    for mid in [e for e in stage_candidates(graph, start) if e - start < max_stage]:
        for end in [e for e in stage_candidates(graph, mid + 1) if e - start < max_stage]:
            pairs.append((max(max(live[end + 1:], default=0), nbytes(mid) + nbytes(end)),
                          mid, end))
    facts_a: Dict[int, Dict[Tuple[int, int], Tuple[int, float, int]]] = {}
    scored = []  # (bound, extra cost, extra MACs, stages)

    def worst() -> float:
        return scored[keep - 1][0] if len(scored) >= keep else float("inf")

    for low, mid, end in sorted(pairs):
        if low >= worst():
            break
        if mid not in facts_a:
            facts_a[mid] = {ga: _stage_facts(graph, start, mid, ga, view, allow_inplace,
                                             variants, cost) for ga in fitting(mid)}
        a_ok = [(ga, f) for ga, f in facts_a[mid].items() if f[0] < worst()
                and (max_extra_cost is None or f[1] <= max_extra_cost)]
        if not a_ok:
            continue
        b_all = [((1, 1), (max(live[mid + 1:end + 1]), 0.0, 0))]
        b_all += [(gb, _stage_facts(graph, mid + 1, end, gb, view, allow_inplace, variants,
                                    cost)) for gb in fitting(end)]
        for ga, (peak_a, cost_a, macs_a) in a_ok:
            for gb, (peak_b, cost_b, macs_b) in b_all:
                extra = cost_a + cost_b
                if max_extra_cost is not None and extra > max_extra_cost:
                    continue
                scored.append((max(low, peak_a, peak_b), extra, macs_a + macs_b,
                               ((start, mid, ga), (mid + 1, end, gb))))
        scored.sort(key=lambda s: s[:2])
    scored.sort(key=lambda s: s[:2])
    macs_before = _stage_macs(graph, graph.nodes)
    before = measure(graph) if measure else plan_memory(view(graph), allow_inplace,
                                                        variants=variants).arena_bytes
    plans: List[Tuple[int, float, PatchPlan]] = []

    def place(extra: float, extra_macs: int, stages) -> None:
        patched = patch_stages(graph, stages)
        arena = (measure(patched) if measure else
                 plan_memory(view(patched), allow_inplace, variants=variants).arena_bytes)
        (s0, _, ga), (_, end, _) = stages
        plans.append((arena, extra, PatchPlan(
            s0, end, ga, graph.nodes[end].outputs[0], before, arena,
            _stage_macs(graph, graph.nodes[s0:end + 1]), extra_macs, patched, macs_before,
            stages=tuple(stages), extra_cost=extra)))

    for _, extra, extra_macs, stages in scored[:keep]:
        place(extra, extra_macs, stages)
    # The target's arena can sit above every bound (a layer outside the stages, or target
    # scratch): then the cheapest plan whose bound is below that arena likely reaches it too.
    floor = min((a for a, _, _ in plans), default=None)
    cheaper = [s for s in scored[keep:] if floor is not None and s[0] <= floor
               and s[1] < min(e for _, e, _ in plans)]
    if cheaper:
        _, extra, extra_macs, stages = min(cheaper, key=lambda s: s[1])
        place(extra, extra_macs, stages)
    return [p for _, _, p in sorted(plans, key=lambda t: t[:2]) if p.arena_after < before]
