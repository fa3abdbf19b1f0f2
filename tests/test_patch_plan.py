"""Patch-based execution (issue 5, passes/patch_plan.py): the first stage run tile by tile gives
outputs bit-exact with the layer-by-layer build (host, generic target), and MobileNetV2-0.35@144
int8 fits in 128 KiB of arena. Run with -s to see the figures."""

import numpy as np
import pytest

import model_zoo
from onnx_helpers import quantize_ort
from edgecc.backends.codegen import generate
from edgecc.compiler.driver import optimize
from edgecc.passes.memory_plan import plan_memory
from edgecc.passes.patch_plan import (arena_of, patch_graph, plan_patches,
                                      strip_input_quantize)
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target

GENERIC = get_target("generic").backend_chain()

KIB = 1024


def quantize_ort_random(float_path, out_path, shape, seed=0):
    """onnxruntime QDQ quantization calibrated on 8 seeded random inputs."""
    calib = np.random.default_rng(seed).standard_normal((8,) + shape[1:]).astype(np.float32)
    return quantize_ort(float_path, out_path, "input", calib)


def small_cnn(path):
    """conv s2 + inverted residual (1x1, dw 3x3, 1x1, add) + dw s2 + head: odd sizes (23x19)
    so tiles are uneven and halos clip at every border."""
    import warnings

    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = model_zoo._cbr(3, 8, 3, 2, act=nn.ReLU6)
            self.expand = model_zoo._cbr(8, 24, 1, act=nn.ReLU6)
            self.dw = model_zoo._cbr(24, 24, 3, 1, groups=24, act=nn.ReLU6)
            self.project = model_zoo._cbr(24, 8, 1, act=None)
            self.down = model_zoo._cbr(8, 8, 5, 2, p=2, groups=8)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            y = self.stem(x)
            y = y + self.project(self.dw(self.expand(y)))
            y = torch.sigmoid(self.down(y))
            return self.fc(y.mean((2, 3)))

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Net().eval(), torch.randn(1, 3, 23, 19), path, dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["output"])
    return (1, 3, 23, 19)


def int8_input(graph):
    stripped = strip_input_quantize(graph)
    assert stripped is not graph
    return stripped


def build_run(graph, feeds, workdir):
    files = generate(graph, plan_memory(graph), "model", GENERIC)
    build = build_host(files, graph, "model", str(workdir), opt="-O2")
    return [run_host(build, [x], tag=f"s{k}")[0] for k, x in enumerate(feeds)]


def check_exact(graph, patched, feeds, tmp_path):
    ref = build_run(graph, feeds, tmp_path / "layer")
    got = build_run(patched, feeds, tmp_path / "patch")
    for r, o in zip(ref, got):
        assert r.dtype == o.dtype and np.array_equal(r, o)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("patch_small")
    shape = small_cnn(str(root / "small.onnx"))
    q_path = quantize_ort_random(str(root / "small.onnx"), str(root / "small_q.onnx"), shape)
    return optimize(q_path), shape


@pytest.mark.parametrize("grid", [(1, 1), (2, 2), (3, 2), (4, 5)])
def test_small_cnn_every_stage_end_bit_exact(small, grid, tmp_path):
    """Every valid stage end (with the input QuantizeLinear inside the stage), several grids,
    also unequal ones: outputs bit-exact; with sanitizers."""
    from edgecc.passes.patch_plan import stage_candidates
    graph, shape = small
    ends = stage_candidates(graph, 0)
    assert len(ends) >= 4
    rng = np.random.default_rng(1)
    feeds = [rng.standard_normal(shape).astype(np.float32) * 2 for _ in range(2)]
    ref = build_run(graph, feeds, tmp_path / "layer")
    for e in ends:
        patched = patch_graph(graph, 0, e, grid)
        files = generate(patched, plan_memory(patched), "model", GENERIC)
        build = build_host(files, patched, "model", str(tmp_path / f"p{e}"), sanitize=True,
                           opt="-O1")
        for k, (x, r) in enumerate(zip(feeds, ref)):
            got = run_host(build, [x], tag=f"s{k}")[0]
            assert np.array_equal(got, r), f"stage 0..{e}, grid {grid}"


def test_small_cnn_planner_bit_exact(small, tmp_path):
    graph = int8_input(small[0])
    plan = plan_patches(graph)
    assert plan is not None and plan.arena_after < plan.arena_before
    print("\nsmall CNN, int8 input:", plan.describe())
    feeds = [np.random.default_rng(2).integers(-128, 128, small[1]).astype(np.int8)]
    check_exact(graph, plan.graph, feeds, tmp_path)


@pytest.fixture(scope="module")
def mbv2(tmp_path_factory):
    root = tmp_path_factory.mktemp("patch_mbv2")
    name = "mobilenetv2_035"
    model_zoo.build(name, str(root / "f.onnx"), seed=0)
    return quantize_ort_random(str(root / "f.onnx"), str(root / "q.onnx"),
                               model_zoo.INPUT_SHAPES[name])


def test_mobilenetv2_035_patched_arena_and_bit_exact(mbv2, tmp_path):
    """int8 input (the caller passes the int8 image): the planner's smallest-peak plan; the real C
    arena of the patched build is <= 128 KiB and its outputs equal the layer-by-layer build's."""
    graph = int8_input(optimize(mbv2))
    before = plan_memory(graph).arena_bytes
    plan = plan_patches(graph)
    assert plan is not None
    after = plan_memory(plan.graph).arena_bytes
    print(f"\nMobileNetV2-0.35@144 int8 input: {plan.describe()}; "
          f"layer by layer {before:,} B, patched {after:,} B ({after / KIB:.1f} KiB)")
    assert after == plan.arena_after <= 128 * KIB
    rng = np.random.default_rng(3)
    feeds = [rng.integers(-128, 128, graph.types[graph.inputs[0]].shape).astype(np.int8)
             for _ in range(2)]
    check_exact(graph, plan.graph, feeds, tmp_path)


def test_mobilenetv2_035_float_input_bit_exact(mbv2, tmp_path):
    """The ORT QDQ model as is (float input, quantized tile by tile inside the stage): bit-exact.
    The float image is read in place from the caller's buffer (not in the arena)."""
    graph = optimize(mbv2)
    plan = plan_patches(graph, external_inputs=True)
    assert plan is not None and plan.arena_after <= 128 * KIB
    print(f"\nMobileNetV2-0.35@144 float input: {plan.describe()}; C arena "
          f"{arena_of(graph):,} B -> {arena_of(plan.graph):,} B")
    feeds = [np.random.default_rng(4).standard_normal((1, 3, 144, 144)).astype(np.float32)]
    check_exact(graph, plan.graph, feeds, tmp_path)


def test_compile_model_patch_hook(mbv2, tmp_path):
    """compile_model(patch=True) on the ORT model as is: smaller arena, same outputs. Its float
    input is copied into the arena by run(), so the planner keeps the stage short."""
    from edgecc.compiler.driver import compile_model
    ref, got = compile_model(mbv2), compile_model(mbv2, patch=True)
    assert ref.patch is None and got.patch is not None
    print(f"\ncompile_model(patch=True): {got.patch.describe()}")
    assert got.plan.arena_bytes == got.patch.arena_after < ref.plan.arena_bytes
    x = np.random.default_rng(5).standard_normal((1, 3, 144, 144)).astype(np.float32)
    outs = []
    for name, r in (("layer", ref), ("patch", got)):
        build = build_host(r.files, r.graph, "model", str(tmp_path / name))
        outs.append(run_host(build, [x])[0])
    assert np.array_equal(outs[0], outs[1])


@pytest.fixture(scope="module")
def small_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("patch_small_cli")
    shape = small_cnn(str(root / "small.onnx"))
    q_path = quantize_ort_random(str(root / "small.onnx"), str(root / "small_q.onnx"), shape)
    return q_path, shape


def test_cli_analyze_patch(small_path, capsys):
    """`edgecc analyze --patch` prints the plan: split point, grid, extra MACs, arena before
    and after; --json carries it too."""
    import json

    from edgecc.cli.main import main
    assert main(["analyze", small_path[0], "--patch"]) == 0
    out = capsys.readouterr().out
    line = [r for r in out.splitlines() if r.startswith("patch plan:")]
    assert len(line) == 1 and "split after" in line[0] and "grid" in line[0], out
    assert "extra MACs" in line[0] and "arena" in line[0]
    assert main(["analyze", small_path[0], "--patch", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    print("\n" + line[0])
    p = info["patch"]
    assert p["arena_after"] < p["arena_before"] and p["extra_macs"] >= 0
    assert info["totals"]["arena_bytes"] <= p["arena_before"]


def test_cli_sram_too_small_for_any_plan(small_path, capsys, tmp_path):
    """Issue 5, acceptance 4: --sram below every plan: exit 2, one line with the peak layer,
    the bytes over and the smallest SRAM reachable with --patch (and its grid)."""
    from edgecc.cli.main import main
    from edgecc.compiler.driver import smallest_reachable
    errs = []
    for extra in ([], ["--patch"]):
        code = main([small_path[0], "--sram", "2K", "--stack", "0", "-o", str(tmp_path / "o")]
                    + extra)
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "B over --sram 2,048 B" in err and "peak at layer '" in err
        assert "smallest reachable:" in err and "with --patch (grid " in err, err
        errs.append(err)
        with capsys.disabled():
            print("\n" + err.strip())
    graph = optimize(small_path[0])
    arena, plan = smallest_reachable(graph, "generic")  # square grids when not --patch
    assert plan is not None and arena == plan.arena_after < arena_of(graph)
    assert f"(arena {arena:,} B) with --patch (grid {plan.grid[0]}x{plan.grid[1]})" in errs[0]
    assert f"smallest reachable: {arena + 16:,} B (arena {arena:,} B)" in errs[1]


def test_cortex_m7_patched_bit_exact_qemu(small_path, tmp_path):
    """patch=True on cortex-m7: the tiles' convolutions go NHWC on CMSIS-NN too (per-side pads
    as CMSIS-NN's begin pads; tile copies NHWC). Under QEMU the firmware equals the host build
    of the same C and the unpatched cortex-m7 build."""
    from edgecc.compiler.driver import compile_model
    from edgecc.passes.patch_plan import is_tile_node
    from edgecc.targets.cortex_m import build_firmware, run_qemu
    pytest.importorskip("shutil").which("qemu-system-arm") or pytest.skip("no qemu-system-arm")
    path, shape = small_path
    ref = compile_model(path, target="cortex-m7")
    got = compile_model(path, target="cortex-m7", patch=True)
    assert ref.patch is None and got.patch is not None
    tiles = [n for n in got.graph.nodes if is_tile_node(n)]
    assert any(n.op == "QConvNHWC" for n in tiles), [n.op for n in tiles]
    assert any(n.op == "TilePasteNHWC" for n in tiles)
    assert "patches sign-extended into the" in got.files["model.c"]  # generated kernels
    assert got.plan.arena_bytes < ref.plan.arena_bytes
    print(f"\ncortex-m7: {got.patch.describe()}; C arena {ref.plan.arena_bytes:,} B -> "
          f"{got.plan.arena_bytes:,} B")
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32) * 2
    outs = {}
    for name, r in (("layer", ref), ("patch", got)):
        host = build_host(r.files, r.graph, "model", str(tmp_path / f"host_{name}"))
        want = run_host(host, [x])[0]
        fw = build_firmware(r.files, str(tmp_path / f"fw_{name}"), "cortex-m7", input_arrays=[x])
        run = run_qemu(fw.elf, "cortex-m7")
        assert len(run.outputs) == 1 and run.outputs[0].tobytes() == want.tobytes(), name
        outs[name] = want
    assert np.array_equal(outs["layer"], outs["patch"])
