"""Two-stage patch plans (issue 12, passes/patch_split.py): the first layers run as two
consecutive stages, each tile by tile on its own grid; outputs bit-exact with the
layer-by-layer build (host, generic and cortex-m7 C, sanitizers), and the search's plans
are what their stages say. MobileNetV2-0.35 on cortex-m7 under QEMU: test_patch_mbv2.py."""

import numpy as np
import pytest
from test_patch_plan import build_run, small  # noqa: F401  (fixture: the small int8 CNN)

from edgecc.backends.codegen import generate
from edgecc.compiler.driver import _emit, _layout_and_plan
from edgecc.ir.ops import op_macs
from edgecc.passes.memory_plan import plan_memory
from edgecc.passes.patch_plan import is_tile_node, stage_candidates
from edgecc.passes.patch_split import patch_stages, plan_two_stages
from edgecc.runner import build_host, run_host
from edgecc.targets.costs import CORTEX_M, GENERIC
from edgecc.targets.registry import get_target


def _splits(graph):
    """(mid, end) pairs of valid consecutive stages from node 0."""
    return [(mid, end) for mid in stage_candidates(graph, 0)
            for end in stage_candidates(graph, mid + 1)]


@pytest.mark.parametrize("grids", [((2, 2), (2, 1)), ((3, 2), (1, 1)), ((1, 3), (3, 3))])
def test_small_cnn_two_stages_bit_exact(small, grids, tmp_path):  # noqa: F811
    graph, shape = small
    pairs = _splits(graph)
    assert len(pairs) >= 6
    rng = np.random.default_rng(3)
    feeds = [rng.standard_normal(shape).astype(np.float32) * 2 for _ in range(2)]
    ref = build_run(graph, feeds, tmp_path / "layer")
    for mid, end in pairs[::2]:
        patched = patch_stages(graph, [(0, mid, grids[0]), (mid + 1, end, grids[1])])
        names = [n.name for n in patched.nodes]
        assert len(names) == len(set(names))  # the second stage's tile nodes are labelled
        files = generate(patched, plan_memory(patched), "model",
                         get_target("generic").backend_chain())
        build = build_host(files, patched, "model", str(tmp_path / f"p{mid}_{end}"),
                           sanitize=True, opt="-O1")
        for k, (x, r) in enumerate(zip(feeds, ref)):
            assert np.array_equal(run_host(build, [x], tag=f"s{k}")[0], r), (mid, end, grids)


def test_small_cnn_two_stages_cortex_m7_host_bit_exact(small, tmp_path):  # noqa: F811
    """The cortex-m7 C (NHWC tiles, generated kernels, in-place depthwise) on the host."""
    graph, shape = small
    mid, end = _splits(graph)[0]
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    outs = []
    for name, g in (("layer", graph),
                    ("split", patch_stages(graph, [(0, mid, (2, 2)), (mid + 1, end, (2, 1))]))):
        laid, plan = _layout_and_plan(g, "cortex-m7")
        files, _ = _emit(laid, plan, "model", "cortex-m7")
        build = build_host(files, laid, "model", str(tmp_path / name), sanitize=True,
                           opt="-O1")
        outs.append(run_host(build, [x])[0])
    assert np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("cost", [GENERIC, CORTEX_M], ids=["generic", "cortex_m"])
def test_search_plans_are_their_stages(small, cost):  # noqa: F811
    """Every plan returned: two stages as declared, its graph equal to patch_stages of them,
    its arena the plan's and below layer by layer, its extra cost under the cap and equal to
    the cost model's sum, best first."""
    graph, _ = small
    total = sum(cost(graph, n) for n in graph.nodes)
    plans = plan_two_stages(graph, cost, max_extra_cost=0.5 * total, keep=4)
    assert plans
    before = plan_memory(graph).arena_bytes
    for p in plans:
        (s0, mid, ga), (s1, end, gb) = p.stages
        assert s0 == 0 and s1 == mid + 1 and (p.start, p.end) == (0, end)
        again = patch_stages(graph, p.stages)
        assert [n.name for n in again.nodes] == [n.name for n in p.graph.nodes]
        assert p.arena_after == plan_memory(p.graph).arena_bytes < before
        tiles = [n for n in p.graph.nodes if is_tile_node(n)]
        new_cost = sum(cost(p.graph, n) for n in tiles)
        old_cost = sum(cost(graph, n) for n in graph.nodes[:end + 1])
        if gb == (1, 1):  # stage B layer by layer: its nodes are no tiles
            old_cost = sum(cost(graph, n) for n in graph.nodes[:mid + 1])
        assert abs(p.extra_cost - (new_cost - old_cost)) < 1e-6 * total
        assert p.extra_cost <= 0.5 * total
        assert p.extra_macs == (sum(op_macs(p.graph, n) for n in p.graph.nodes)
                                - sum(op_macs(graph, n) for n in graph.nodes))
    assert [(p.arena_after, p.extra_cost) for p in plans] == sorted(
        (p.arena_after, p.extra_cost) for p in plans)


def test_cost_model_counts(small):  # noqa: F811
    """targets/costs.py: per MAC, element, pixel and call, as stated; MACs as op_macs."""
    from edgecc.targets.costs import Costs, CostModel
    graph, _ = small
    laid, _ = _layout_and_plan(graph, "cortex-m7")
    per_mac = CostModel((("default", Costs(mac=1.0)),))
    for g in (graph, laid):
        assert all(per_mac(g, n) == op_macs(g, n) for n in g.nodes)
    model = CostModel((("depthwise", Costs(mac=2.0, pixel=3.0, call=5.0)),
                       ("default", Costs(element=7.0))))
    for n in graph.nodes:
        y = graph.types[n.outputs[0]].shape
        if n.op == "QConv" and n.attrs.group > 1:
            want = 2.0 * op_macs(graph, n) + 3.0 * y[0] * y[2] * y[3] + 5.0
        else:
            want = 7.0 * int(np.prod(y))
        assert model(graph, n) == want, n.name
