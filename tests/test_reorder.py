"""The reorder pass (passes/reorder.py): the execution order with the smallest peak.

A two-branch model given in a bad order (the arena drop computed by hand, the C build against
onnxruntime), the exact search against brute force over every topological order of small random
graphs, a chain and a wide graph (the state cap) left alone, and the reference models.
"""
import itertools
import os
import sys
import time

import networkx as nx
import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper

from edgecc.compiler.driver import compile_model, optimize
from edgecc.compiler.frontend import import_onnx
from edgecc.ir import Graph
from edgecc.passes.memory_plan import plan_memory
from edgecc.passes.reorder import greedy_order, min_peak_order, reorder_for_memory
from edgecc.runner import build_host, run_host
from onnx_helpers import make_model, rand
from test_memory_plan import chain_model, random_graph

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))


def with_order(graph: Graph, order) -> Graph:
    return Graph(graph.name, [graph.nodes[k] for k in order], list(graph.inputs),
                 list(graph.outputs), dict(graph.types), dict(graph.constants))


def node_dag(graph: Graph) -> nx.DiGraph:
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(graph.nodes)))
    producer = {o: k for k, n in enumerate(graph.nodes) for o in n.outputs if o}
    dag.add_edges_from((producer[i], k) for k, n in enumerate(graph.nodes)
                       for i in n.inputs if i in producer)
    return dag


def topological_orders(graph: Graph, limit: int):
    """Every topological order of the graph's nodes, or None when there are more than limit."""
    orders = list(itertools.islice(nx.all_topological_sorts(node_dag(graph)), limit + 1))
    return None if len(orders) > limit else orders


def assert_permutation(before: Graph, after: Graph) -> None:
    assert sorted(map(repr, after.nodes)) == sorted(map(repr, before.nodes))
    assert (after.inputs, after.outputs, after.types) == (before.inputs, before.outputs,
                                                          before.types)
    after.verify()


# -- a two-branch model given in a bad order ----------------------------------------------------

def two_branch_model():
    """x [1,8,16,16] -> a1 = Conv 1x1 to 32 ch (32 KiB) -> a2 = Conv 1x1 to 4 ch (4 KiB), the same
    for b1 -> b2, y = a2 + b2. Given as a1, b1, a2, b2, y: a1 and b1 are both held."""
    rng = np.random.default_rng(0)
    inits = {"wa1": rand(rng, 32, 8, 1, 1), "wb1": rand(rng, 32, 8, 1, 1),
             "wa2": rand(rng, 4, 32, 1, 1), "wb2": rand(rng, 4, 32, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "wa1"], ["a1"], name="a1"),
             helper.make_node("Conv", ["x", "wb1"], ["b1"], name="b1"),
             helper.make_node("Conv", ["a1", "wa2"], ["a2"], name="a2"),
             helper.make_node("Conv", ["b1", "wb2"], ["b2"], name="b2"),
             helper.make_node("Add", ["a2", "b2"], ["y"], name="y")]
    return make_model(nodes, [("x", [1, 8, 16, 16])], [("y", [1, 4, 16, 16])], inits)


def test_two_branch_order_lowers_the_arena(tmp_path):
    # By hand: given order a1, b1, a2, b2, y: at a2, a1 + b1 + a2 = 32 + 32 + 4 KiB = 68 KiB
    # (x is the caller's; y is written in place into a2). Best: a1, a2, b1, b2, y: at b2,
    # a2 + b1 + b2 = 40 KiB; a1 + a2 = 36 KiB before. Greedy placement reaches both bounds.
    model = two_branch_model()
    x = rand(np.random.default_rng(1), 1, 8, 16, 16)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0]
    results = {}
    for tag, skip in (("given", ["reorder"]), ("reordered", [])):
        res = compile_model("two.onnx", model=model, prefix="two", skip_passes=skip)
        build = build_host(res.files, res.graph, res.prefix, str(tmp_path / tag), sanitize=True,
                           opt="-O1")
        out = run_host(build, [x])[0]
        assert np.abs(out - ref).max() <= 1e-5 * max(float(np.abs(ref).max()), 1e-3), tag
        results[tag] = res
    given, reordered = results["given"], results["reordered"]
    print(f"\ntwo-branch arena: given order {given.plan.arena_bytes:,} B, "
          f"reordered {reordered.plan.arena_bytes:,} B")
    assert [n.name for n in given.graph.nodes] == ["a1", "b1", "a2", "b2", "y"]
    assert [n.name for n in reordered.graph.nodes] == ["a1", "a2", "b1", "b2", "y"]
    assert given.plan.arena_bytes == given.plan.lower_bound == 68 * 1024
    assert reordered.plan.arena_bytes == reordered.plan.lower_bound == 40 * 1024
    assert min_peak_order(given.graph)[0] == 40 * 1024
    assert_permutation(given.graph, reordered.graph)
    again = compile_model("two.onnx", model=model, prefix="two")
    assert again.files == reordered.files  # byte-identical across runs


def test_search_matches_brute_force_on_random_graphs():
    """The search's peak is the smallest lower bound over every topological order, its order
    reaches it, and the pass never raises the arena (also on the greedy path)."""
    checked = improved = 0
    for seed in range(300):
        g = random_graph(seed)
        orders = topological_orders(g, 500)
        if orders is None:
            continue
        checked += 1
        peak, order = min_peak_order(g)
        assert peak == min(plan_memory(with_order(g, o)).lower_bound for o in orders), seed
        assert plan_memory(with_order(g, order)).lower_bound == peak, seed
        arena = plan_memory(g).arena_bytes
        for kept in (reorder_for_memory(g), reorder_for_memory(g, max_states=2)):
            assert_permutation(g, kept)
            assert plan_memory(kept).arena_bytes <= arena, seed
        improved += plan_memory(reorder_for_memory(g)).arena_bytes < arena
    assert checked >= 150 and improved >= 10, (checked, improved)


def test_given_order_kept_when_optimal():
    """Ties keep the given order: on every random graph whose given order has the smallest peak
    the search returns exactly that order."""
    kept = 0
    for seed in range(300):
        g = random_graph(seed)
        peak, order = min_peak_order(g)
        if plan_memory(g).lower_bound == peak:
            assert order == list(range(len(g.nodes))), seed
            kept += 1
    assert kept >= 100


# -- left alone ---------------------------------------------------------------------------------

def test_chain_is_unchanged():
    g = import_onnx("chain.onnx", model=chain_model())
    assert reorder_for_memory(g) is g
    assert min_peak_order(g)[1] == list(range(len(g.nodes)))


def wide_graph(chains: int = 24) -> Graph:
    """x -> Conv 1x1 -> Sigmoid, ``chains`` times side by side, then Concat: 3**24 prefixes."""
    rng = np.random.default_rng(0)
    nodes, inits = [], {}
    for k in range(chains):
        inits[f"w{k}"] = rand(rng, 2, 4, 1, 1)
        nodes += [helper.make_node("Conv", ["x", f"w{k}"], [f"c{k}"]),
                  helper.make_node("Sigmoid", [f"c{k}"], [f"s{k}"])]
    nodes.append(helper.make_node("Concat", [f"s{k}" for k in range(chains)], ["y"], axis=1))
    model = make_model(nodes, [("x", [1, 4, 8, 8])], [("y", [1, 2 * chains, 8, 8])], inits)
    return import_onnx("wide.onnx", model=model)


def test_state_cap_falls_back_quickly():
    g = wide_graph()
    start = time.perf_counter()
    assert min_peak_order(g) is None  # more than MAX_STATES prefixes
    kept = reorder_for_memory(g)
    elapsed = time.perf_counter() - start
    print(f"\nwide graph ({len(g.nodes)} nodes): capped search + greedy in {elapsed:.2f} s")
    assert kept is g  # the greedy order is the given one (chain by chain)
    assert greedy_order(g) == list(range(len(g.nodes)))
    assert elapsed < 5.0


# -- reference models -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    pytest.importorskip("torch")
    import model_zoo
    from memory import quantized_model
    root = tmp_path_factory.mktemp("zoo")
    paths = {}
    for name in model_zoo.NAMES:
        paths[name, "float"] = model_zoo.build(name, str(root / f"{name}.onnx"), seed=0)
        paths[name, "int8"] = quantized_model(name, str(root))
    return paths


@pytest.mark.parametrize("kind", ["float", "int8"])
@pytest.mark.parametrize("name", ["resnet8", "dscnn", "mobilenetv1_025", "autoencoder",
                                  "mobilenetv2_035"])
def test_reference_models(zoo, name, kind):
    g = optimize(zoo[name, kind], skip_passes=["reorder"])
    start = time.perf_counter()
    kept = reorder_for_memory(g)
    elapsed = time.perf_counter() - start
    before, after = plan_memory(g), plan_memory(kept)
    print(f"\n{name} {kind}: arena {before.arena_bytes:,} -> {after.arena_bytes:,} B "
          f"(lower bound {before.lower_bound:,}, search peak {min_peak_order(g)[0]:,}) "
          f"in {elapsed:.3f} s")
    assert_permutation(g, kept)
    assert after.arena_bytes <= before.arena_bytes
    assert elapsed < 2.0


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_resnet8_order_does_not_matter(zoo, kind):
    """ResNet-8's downsampling blocks branch (body and 1x1 shortcut), but every order gives the
    same peak and arena: the peak is in the first block (identity shortcut: input, conv1 and
    conv2 outputs, three 16x32x32 maps), and in each downsampling block either order holds
    the block input plus two half-size maps."""
    g = optimize(zoo["resnet8", kind], skip_passes=["reorder"])
    orders = topological_orders(g, 1000)
    assert len(orders) > 1
    plans = [plan_memory(with_order(g, o)) for o in orders]
    assert len({(p.lower_bound, p.arena_bytes) for p in plans}) == 1
    print(f"\nresnet8 {kind}: {len(orders)} orders, all arena {plans[0].arena_bytes:,} B")
    assert reorder_for_memory(g) is g
