"""The typed memory report (edgecc/memory_report.py) and `edgecc analyze --plot`.

Each report is checked against what the graph says independently: every tensor a node writes is
placed once (or read from a graph input), lifetimes from producers and consumers, live bytes
per node recomputed from the placements, no two tensors live at the same node overlapping in
the arena, and peak == max(live) <= arena. On the small CNN of test_patch_plan.py and on the
MobileNetV2-0.35 QDQ model, layer by layer and patched, generic and Cortex-M (kernel scratch).
Run with -s to see the figures."""
import json

import onnx
import pytest

import model_zoo
from edgecc.cli.main import main
from edgecc.compiler.driver import compile_model
from edgecc.memory_report import memory_report
from edgecc.passes.memory_plan import ALIGN
from test_memory_plan import branchy_model, chain_model, reshape_model
from test_patch_plan import quantize_ort_random, small_cnn


def lifetimes(graph):
    """tensor -> (producer index, last reader index; a graph output: the last node)."""
    out = {}
    for idx, node in enumerate(graph.nodes):
        for o in node.outputs:
            if o:
                readers = [k for k, n in enumerate(graph.nodes) if o in n.inputs]
                last = len(graph.nodes) - 1 if o in graph.outputs else max(readers + [idx])
                out[o] = (idx, last)
    return out


def check_report(result):
    graph, rep = result.graph, memory_report(result)
    n = len(graph.nodes)
    span = lifetimes(graph)
    # every tensor a node writes: in the arena exactly once, or the bytes of a graph input
    placed = [t.name for t in rep.tensors]
    assert len(placed) == len(set(placed))
    assert set(placed) | (set(rep.external) - set(graph.inputs)) == set(span)
    assert not set(placed) & set(rep.external) and set(graph.inputs) <= set(rep.external)
    for t in rep.tensors:
        nbytes = graph.types[t.name].nbytes
        assert t.nbytes == nbytes and t.size == -(-nbytes // ALIGN) * ALIGN
        assert (t.first_node, t.last_node) == span[t.name]
        assert 0 <= t.offset and t.offset + t.size <= rep.arena_bytes
    # tensors of one buffer share their bytes and touch at one node at most
    by_buffer = {}
    for t in rep.tensors:
        by_buffer.setdefault(t.buffer, []).append(t)
    for group in by_buffer.values():
        assert len({(t.offset, t.size) for t in group}) == 1
        for a, b in zip(group, group[1:]):
            assert a.last_node <= b.first_node
    # live bytes per node: the arena bytes covered by the tensors live there, plus scratch
    live = [0] * n
    for i in range(n):
        covered = set()
        for t in rep.tensors:
            if t.first_node <= i <= t.last_node:
                covered.update(range(t.offset, t.offset + t.size))
        live[i] = len(covered)
    for s in rep.scratch:
        assert s.size > 0 and s.offset + s.size <= rep.arena_bytes
        live[s.node] += s.size
    assert rep.live_bytes == live
    # pairwise: live at a common node (different buffers) -> disjoint bytes, except a node run
    # in place (in-place depthwise): its input and output share bytes at that node only
    in_place = {(graph.nodes[k].inputs[0], graph.nodes[k].outputs[0], k)
                for k in result.plan.inplace_nodes}
    blocks = [(t.offset, t.size, t.first_node, t.last_node, t.buffer, t.name)
              for t in rep.tensors]
    blocks += [(s.offset, s.size, s.node, s.node, ("scratch", s.node), "") for s in rep.scratch]
    for k, a in enumerate(blocks):
        for b in blocks[k + 1:]:
            if a[4] != b[4] and a[2] <= b[3] and b[2] <= a[3]:
                if (a[5], b[5], a[3]) in in_place and a[3] == b[2]:
                    continue
                assert a[0] + a[1] <= b[0] or b[0] + b[1] <= a[0], (a, b)
    peak = max(live)
    assert rep.live_bytes[rep.peak_node_index] == peak == rep.peak_bytes
    assert rep.peak_layer == graph.nodes[rep.peak_node_index].name
    assert rep.arena_bytes == result.plan.arena_bytes >= peak >= rep.lower_bound
    assert rep.arena_bytes >= max(live)
    return rep


@pytest.fixture(scope="module")
def small_q(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_small")
    shape = small_cnn(str(root / "small.onnx"))
    return quantize_ort_random(str(root / "small.onnx"), str(root / "small_q.onnx"), shape)


@pytest.fixture(scope="module")
def mbv2(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_mbv2")
    name = "mobilenetv2_035"
    model_zoo.build(name, str(root / "f.onnx"), seed=0)
    path = quantize_ort_random(str(root / "f.onnx"), str(root / "q.onnx"),
                               model_zoo.INPUT_SHAPES[name])
    return path, compile_model(path), compile_model(path, patch=True)


@pytest.mark.parametrize("build", [branchy_model, chain_model, reshape_model])
def test_float_models_report(build, tmp_path):
    """Float graphs of test_memory_plan.py: a side output read before the end (branchy), an
    in-place chain, Reshape/Flatten aliases."""
    path = str(tmp_path / "m.onnx")
    onnx.save(build(), path)
    rep = check_report(compile_model(path))
    assert len({t.buffer for t in rep.tensors}) < len(rep.tensors)  # some share bytes


@pytest.mark.parametrize("target", ["generic", "cortex-m7"])
@pytest.mark.parametrize("patch", [False, True])
def test_small_cnn_report(small_q, target, patch):
    result = compile_model(small_q, target, patch=patch)
    assert (result.patch is not None) == patch
    rep = check_report(result)
    # scratch: CMSIS-NN's on cortex-m7, the in-place depthwise's one plane on generic
    assert {s.node for s in rep.scratch} >= set(result.plan.inplace_nodes)
    assert bool(rep.scratch) == (target == "cortex-m7" or bool(result.plan.inplace_nodes))
    print(f"\nsmall CNN {target} patch={patch}: {len(rep.tensors)} tensors, peak "
          f"{max(rep.live_bytes):,} B at node {rep.peak_node_index}, arena {rep.arena_bytes:,} B")


def test_mobilenetv2_report(mbv2):
    _, layer, patched = mbv2
    assert patched.patch is not None
    reps = [check_report(layer), check_report(patched)]
    assert reps[1].arena_bytes < reps[0].arena_bytes
    print(f"\nMobileNetV2-0.35 QDQ: layer by layer peak {max(reps[0].live_bytes):,} B, arena "
          f"{reps[0].arena_bytes:,} B; patched peak {max(reps[1].live_bytes):,} B, arena "
          f"{reps[1].arena_bytes:,} B")


def test_analyze_json_and_table(small_q, capsys):
    """--json carries the report as plain dicts (the same on every run); the table names it."""
    assert main(["analyze", small_q, "--json"]) == 0
    first = capsys.readouterr().out
    assert main(["analyze", small_q, "--json"]) == 0
    assert capsys.readouterr().out == first
    mem = json.loads(first)["memory"]
    assert mem == json.loads(json.dumps(memory_report(compile_model(small_q)).to_dict()))
    assert [t["first_node"] for t in mem["tensors"]] == sorted(t["first_node"]
                                                               for t in mem["tensors"])
    assert main(["analyze", small_q]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("memory plan:")]
    assert len(rows) == 1 and f"{len(mem['tensors'])} tensors" in rows[0], rows


def read_png(path):
    import matplotlib.image
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def colour_pixels(img, hex_colour, tol=0.08):
    import numpy as np
    rgb = np.array([int(hex_colour[k:k + 2], 16) / 255 for k in (1, 3, 5)])
    return int((np.abs(img[..., :3] - rgb).max(axis=-1) < tol).sum())


def test_analyze_plot(small_q, tmp_path, capsys):
    """Two panels (layer by layer, patched) for the small CNN, the same bytes on every run and
    whichever series analyze itself compiled; with --sram, the budget line; a float model (no
    patched plan) draws one panel."""
    pytest.importorskip("matplotlib")
    from edgecc import memory_plot
    two, again, budget, one = (str(tmp_path / f) for f in ("two.png", "again.png", "budget.png",
                                                            "one.png"))
    assert main(["analyze", small_q, "--plot", two]) == 0
    assert f"live bytes per layer: {two}" in capsys.readouterr().out
    assert main(["analyze", small_q, "--plot", again, "--patch"]) == 0
    with open(two, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read()
    img = read_png(two)
    assert colour_pixels(img, memory_plot._LAYER_COLOR) > 500
    assert colour_pixels(img, memory_plot._PATCH_COLOR) > 500
    assert colour_pixels(img, memory_plot._BUDGET_COLOR) == 0
    assert main(["analyze", small_q, "--plot", budget, "--sram", "8K", "--stack", "0"]) == 0
    assert colour_pixels(read_png(budget), memory_plot._BUDGET_COLOR) > 100
    path = str(tmp_path / "chain.onnx")
    onnx.save(chain_model(), path)
    assert main(["analyze", path, "--plot", one]) == 0
    single = read_png(one)
    assert single.shape[0] == img.shape[0] and single.shape[1] < 0.7 * img.shape[1]
    assert colour_pixels(single, memory_plot._PATCH_COLOR) == 0
    print(f"\n{two}: {img.shape[1]}x{img.shape[0]}; {one}: {single.shape[1]}x{single.shape[0]}")


def test_plot_mobilenetv2(mbv2, tmp_path):
    pytest.importorskip("matplotlib")
    from edgecc import memory_plot
    path, layer, patched = mbv2
    out = str(tmp_path / "mbv2.png")
    memory_plot.draw(out, layer, patched, "MobileNetV2-0.35 QDQ", sram=128 * 1024)
    img = read_png(out)
    for colour in (memory_plot._LAYER_COLOR, memory_plot._PATCH_COLOR, memory_plot._BUDGET_COLOR):
        assert colour_pixels(img, colour) > 100
    print(f"\n{out}: {img.shape[1]}x{img.shape[0]}")


def test_plot_without_matplotlib(small_q, tmp_path, monkeypatch, capsys):
    """One line, exit 2, before compiling; no file written."""
    import builtins
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out = tmp_path / "m.png"
    assert main(["analyze", small_q, "--plot", str(out)]) == 2
    err = capsys.readouterr()
    assert err.out == "" and not out.exists()
    assert err.err == "edgecc: error: --plot needs matplotlib: pip install 'edgecc[plot]'\n"
