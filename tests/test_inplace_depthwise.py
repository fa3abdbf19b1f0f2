"""Exact in-place depthwise convolution (issue 5, MCUNet's in-place depthwise).

A 2-D NCHW depthwise convolution whose input dies at the node writes its output over its input,
one output channel plane at a time through a one-plane scratch (proof in
compiler/lowering/conv.py, depthwise_inplace_scratch). Checked here: in-place builds are
bit-exact with out-of-place builds (float and int8, ASan + UBSan) over strides, padding (also
asymmetric), dilation, odd sizes and batch 2, and the float ones match onnxruntime; a depthwise
whose input is still needed later, or whose output plane is larger than its input plane, is not
run in place; a patched MobileNetV2-0.35 stage runs its tile convolutions in place, bit-exact;
the arena of MobileNetV2-0.35 shrinks, layer by layer and patched; Cortex-M's NHWC (CMSIS-NN)
depthwise convolutions run in place through their own row variant (backends/cortex_m/
depthwise_inplace.py). Run with -s to see the figures.
"""
import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, save
from onnx_helpers import make_model, quantize_ort, rand
from test_memory_plan import check_buffers_pairwise, check_plan
from test_patch_plan import int8_input, mbv2  # noqa: F401  (mbv2: the QDQ model fixture)

from edgecc.backends.codegen import generate
from edgecc.compiler.driver import compile_model, optimize
from edgecc.ir.ops import IR_OPS, op_macs
from edgecc.passes.memory_plan import plan_memory
from edgecc.passes.patch_plan import is_tile_node, plan_patches
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target

GENERIC = get_target("generic").backend_chain()

KIB = 1024

# (kernel, strides, pads [top, left, bottom, right], dilations) per depthwise layer
CHAINS = {
    # odd 13x11: 3x3 same, 3x3 stride 2, dilated 3x3, 2x2 with asymmetric pads
    "odd": ((1, 5, 13, 11), [((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
                             ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
                             ((3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),
                             ((2, 2), (1, 1), (0, 1, 1, 0), (1, 1))]),
    # batch 2: 5x5 stride 2, unequal strides and dilations with uneven pads, 1x1 unpadded
    "batch2": ((2, 3, 9, 7), [((5, 5), (2, 2), (2, 2, 2, 2), (1, 1)),
                              ((3, 3), (1, 2), (2, 0, 1, 1), (2, 1)),
                              ((1, 1), (1, 1), (0, 0, 0, 0), (1, 1))]),
    # the 1x1 with padding makes its output plane larger than its input: not in place
    "grows": ((1, 4, 6, 5), [((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
                             ((1, 1), (1, 1), (1, 1, 1, 1), (1, 1))]),
}


def out_size(size, k, s, p0, p1, d):
    return (size + p0 + p1 - (k - 1) * d - 1) // s + 1


def chain_model(name, batch=None):
    """x -> Relu -> depthwise layers of CHAINS[name] -> y; returns (model, x shape, in-place
    expected per layer: output plane no larger than the input plane)."""
    shape, layers = CHAINS[name]
    shape = (batch or shape[0],) + shape[1:]
    rng = np.random.default_rng(0)
    n, c, h, w = shape
    nodes, inits, expect = [helper.make_node("Relu", ["x"], ["a0"])], {}, []
    for k, (kern, s, p, d) in enumerate(layers):
        inits[f"w{k}"] = rand(rng, c, 1, *kern)
        inits[f"b{k}"] = rand(rng, c)
        out = "y" if k == len(layers) - 1 else f"a{k + 1}"
        nodes.append(helper.make_node("Conv", [f"a{k}", f"w{k}", f"b{k}"], [out], group=c,
                                      kernel_shape=list(kern), strides=list(s), pads=list(p),
                                      dilations=list(d)))
        oh = out_size(h, kern[0], s[0], p[0], p[2], d[0])
        ow = out_size(w, kern[1], s[1], p[1], p[3], d[1])
        expect.append(oh * ow <= h * w)
        h, w = oh, ow
    return make_model(nodes, [("x", list(shape))], [("y", [n, c, h, w])], inits), shape, expect


def still_needed_model():
    """a = Relu(x); y = dw(a) + a: the depthwise must not overwrite a."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Conv", ["a", "w", "b"], ["d"], group=6, kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["d", "a"], ["y"])]
    return make_model(nodes, [("x", [1, 6, 7, 9])], [("y", [1, 6, 7, 9])],
                      {"w": rand(rng, 6, 1, 3, 3), "b": rand(rng, 6)}), (1, 6, 7, 9)


def depthwise_nodes(graph):
    return [i for i, n in enumerate(graph.nodes) if n.op in ("Conv", "QConv")]


def run_both(graph, feeds, workdir):
    """Outputs of the in-place and the out-of-place build (ASan + UBSan), and the in-place
    plan."""
    outs, plans = {}, {}
    for inplace in (True, False):
        plan = plans[inplace] = plan_memory(graph, allow_inplace=inplace)
        check_plan(graph, plan)
        check_buffers_pairwise(plan)
        build = build_host(generate(graph, plan, "model", GENERIC), graph, "model",
                           str(workdir / f"inplace{int(inplace)}"), sanitize=True, opt="-O1")
        outs[inplace] = [run_host(build, [x], tag=f"s{k}") for k, x in enumerate(feeds)]
    assert not plans[False].inplace_nodes
    for a, b in zip(outs[True], outs[False]):
        assert all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))
    return outs[True], plans[True]


def onnxruntime_outputs(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [sess.run(None, {"x": x})[0] for x in feeds]


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_float_chain_bit_exact_and_matches_onnxruntime(name, tmp_path):
    model, shape, expect = chain_model(name)
    save(model, str(tmp_path / "m.onnx"))
    graph = optimize(str(tmp_path / "m.onnx"))
    rng = np.random.default_rng(2)
    feeds = [rand(rng, *shape) for _ in range(2)]
    outs, plan = run_both(graph, feeds, tmp_path)
    assert [i in plan.inplace_nodes for i in depthwise_nodes(graph)] == expect
    for k in plan.inplace_nodes:  # one output plane of float scratch
        y = graph.types[graph.nodes[k].outputs[0]].shape
        scratch = next(b for b in plan.buffers if b.tensors[0] == f"\0scratch{k}")
        assert y[2] * y[3] * 4 <= scratch.size < y[2] * y[3] * 4 + 16
    for got, ref in zip(outs, onnxruntime_outputs(model, feeds)):
        assert np.abs(got[0] - ref).max() <= 1e-5 * max(float(np.abs(ref).max()), 1.0)


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_int8_chain_bit_exact(name, tmp_path):
    model, shape, expect = chain_model(name, batch=1)  # quantize_ort calibrates batch 1
    save(model, str(tmp_path / "m.onnx"))
    calib = np.random.default_rng(3).standard_normal((8,) + shape[1:]).astype(np.float32)
    q_path = quantize_ort(str(tmp_path / "m.onnx"), str(tmp_path / "q.onnx"), "x", calib)
    graph = optimize(q_path)
    assert [graph.nodes[i].op for i in depthwise_nodes(graph)] == ["QConv"] * len(expect)
    rng = np.random.default_rng(4)
    feeds = [rng.standard_normal(shape).astype(np.float32) * 2 for _ in range(2)]
    _, plan = run_both(graph, feeds, tmp_path)
    assert [i in plan.inplace_nodes for i in depthwise_nodes(graph)] == expect


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
def test_input_needed_later_is_not_overwritten(quantized, tmp_path):
    model, shape = still_needed_model()
    save(model, str(tmp_path / "m.onnx"))
    path = str(tmp_path / "m.onnx")
    if quantized:
        calib = np.random.default_rng(5).standard_normal((8,) + shape[1:]).astype(np.float32)
        path = quantize_ort(path, str(tmp_path / "q.onnx"), "x", calib)
    graph = optimize(path)
    feeds = [rand(np.random.default_rng(6), *shape)]
    outs, plan = run_both(graph, feeds, tmp_path)
    (dw,) = depthwise_nodes(graph)
    assert dw not in plan.inplace_nodes
    if not quantized:
        ref = onnxruntime_outputs(model, feeds)[0]
        assert np.abs(outs[0][0] - ref).max() <= 1e-5 * max(float(np.abs(ref).max()), 1.0)


def cap(graph):
    """A cap on the halos' extra MACs: 25 % of the model's (compile_model's default until it
    weighed estimated instructions, issue 12)."""
    return int(0.25 * sum(op_macs(graph, n) for n in graph.nodes))


@pytest.fixture
def no_inplace_conv(monkeypatch):
    """Turn off just the in-place depthwise (elementwise ops still run in place)."""
    def off():
        for op in ("Conv", "QConv"):
            monkeypatch.setitem(IR_OPS, op, dataclasses.replace(IR_OPS[op], inplace_scratch=None))
    return off


def test_mobilenetv2_035_arena_shrinks(mbv2, no_inplace_conv):
    """Layer by layer and patched (smallest arena, and smallest with halos of at most 25 % of
    the model's MACs): the arena with in-place depthwise is smaller
    than with elementwise in-place only."""
    graph = int8_input(optimize(mbv2))
    rows = {}
    for key in ("in-place depthwise", "elementwise only"):
        if key == "elementwise only":
            no_inplace_conv()
        plan = plan_memory(graph)
        smallest, budget = plan_patches(graph), plan_patches(graph, max_extra_macs=cap(graph))
        rows[key] = (plan.arena_bytes, plan.lower_bound, len(plan.inplace_nodes),
                     smallest.arena_after, smallest.grid, budget.arena_after,
                     budget.extra_macs)
    print("\nMobileNetV2-0.35@144 int8 input, generic target")
    print(f"{'':<20}{'arena':>9}{'lower bd':>9}{'in place':>9}{'patched min':>12}{'grid':>6}"
          f"{'≤25% MACs':>10}{'extra MACs':>12}")
    for key, (arena, lb, n, pmin, grid, pbud, extra) in rows.items():
        print(f"{key:<20}{arena:>9,}{lb:>9,}{n:>9}{pmin:>12,}{'%dx%d' % grid:>6}"
              f"{pbud:>10,}{extra:>12,}")
    new, old = rows["in-place depthwise"], rows["elementwise only"]
    assert new[2] > 0 and old[2] == 0
    assert new[0] < old[0] and new[1] < old[1]   # layer by layer
    assert new[3] < old[3]                       # patched, smallest arena
    assert new[5] < old[5] <= 128 * KIB                # patched, halos within 25 % of MACs


def test_mobilenetv2_035_patched_stage_in_place_bit_exact(mbv2, tmp_path):
    """The tile convolutions of a patched stage (per-side pads) run in place, bit-exact with
    the out-of-place build and with the layer-by-layer build."""
    graph = int8_input(optimize(mbv2))
    patched = plan_patches(graph, max_extra_macs=cap(graph)).graph
    rng = np.random.default_rng(7)
    feeds = [rng.integers(-128, 128, graph.types[graph.inputs[0]].shape).astype(np.int8)]
    outs, plan = run_both(patched, feeds, tmp_path)
    tiles = [i for i in plan.inplace_nodes if is_tile_node(patched.nodes[i])]
    assert tiles and all(len(patched.nodes[i].attrs.pads) == 4 for i in tiles)
    print(f"\npatched MobileNetV2-0.35: {len(tiles)} tile convolutions of "
          f"{len(plan.inplace_nodes)} in place")
    layer = plan_memory(graph)
    build = build_host(generate(graph, layer, "model", GENERIC), graph, "model", str(tmp_path / "layer"))
    assert np.array_equal(run_host(build, feeds)[0], outs[0][0])


def test_cortex_m7_nhwc_depthwise_in_place(mbv2, no_inplace_conv):
    """On cortex-m7 the depthwise convolutions are QConvNHWC: those whose input dies there run
    in place through the generated kernel's row variant (backends/cortex_m/depthwise_inplace.py;
    bit-exact: tests/test_cortex_m_kernels.py, test_patch_mbv2.py), the tiles' of a patched stage
    too. The layer-by-layer build does not use the portable NCHW variant (same files with it
    turned off; the patch search, on the NCHW graph, plans with it as a stand-in)."""
    result = compile_model(mbv2, target="cortex-m7")
    patched = compile_model(mbv2, target="cortex-m7", patch=True)
    for r in (result, patched):
        g = r.graph
        last_read = {t: i for i, n in enumerate(g.nodes) for t in n.inputs if t}
        assert r.plan.inplace_nodes
        for i in r.plan.inplace_nodes:
            n = g.nodes[i]
            assert n.op == "QConvNHWC" and n.attrs.group > 1 and last_read[n.inputs[0]] == i
            assert r.plan.offset(n.inputs[0]) == r.plan.offset(n.outputs[0])
    assert any(is_tile_node(patched.graph.nodes[i]) for i in patched.plan.inplace_nodes)
    without = plan_memory(result.graph, scratch={i: get_target("cortex-m7").scratch(
        result.graph, n) for i, n in enumerate(result.graph.nodes)})  # no kernel variants
    print(f"\ncortex-m7 layer by layer: arena {without.arena_bytes:,} B -> "
          f"{result.plan.arena_bytes:,} B with the in-place NHWC depthwise")
    assert (without.arena_bytes, result.plan.arena_bytes) == (311_040, 290_336)  # README
    no_inplace_conv()
    assert compile_model(mbv2, target="cortex-m7").files == result.files


@pytest.mark.parametrize("target", ["generic", "cortex-m7"])
def test_mobilenetv2_residual_adds_into_dead_input(mbv2, target):
    """Every residual add of MobileNetV2 writes its output over an input that dies there (the
    elementwise in-place rule), on the portable and the CMSIS-NN build alike."""
    result = compile_model(mbv2, target=target, patch=False)
    g, plan = result.graph, result.plan
    last_read = {t: i for i, n in enumerate(g.nodes) for t in n.inputs if t}
    adds = [(i, n) for i, n in enumerate(g.nodes) if n.op == "QAdd"]
    assert len(adds) == 10
    for i, n in adds:
        dead = [t for t in n.inputs if t in plan.offsets and last_read[t] == i
                and t not in g.outputs]
        assert any(plan.offset(t) == plan.offset(n.outputs[0]) for t in dead), n.name
