"""edgecc's own Cortex-M kernels (edgecc/backends/cortex_m/, issue 12: convolutions, depthwise
convolutions, elementwise adds, means over H and W) against the numpy model
of the integer math (edgecc/ir/quant_ref.py), bit for bit.

Random layers (fixed seed) are built as one IR graph, one node per case, laid out for
cortex-m7 (NHWC) and compiled once. The same C runs twice: on the host with ASan + UBSan (the
portable form of the DSP instructions) and under QEMU on the Cortex-M7 (SMLAD, SXTB16, SMMULR
and SSAT, the inline assembly); both must equal the model. Cases cover odd channel counts
(K not a multiple of 4, odd M), odd pixel counts, strides, dilations, padding, batches, fused
clamps, and power-of-two scales so that requantization lands on exact halves. Every case must
be taken by the generated kernel, not by the CMSIS-NN fallback.
"""
import shutil

import numpy as np
import pytest
from int8_testlib import (I8, SEED, WIDE, Program, bounds, fit_scale, layers_of, near, qp, rand_act,
                          rand_q)

from edgecc.backends.codegen import generate
from edgecc.compiler.driver import _layout_and_plan
from edgecc.ir import Node
from edgecc.ir import quant_ref as R
from edgecc.ir.ops.conv import ConvAttrs
from edgecc.ir.ops.gemm import GemmAttrs
from edgecc.ir.ops.int8_arith_ops import QBinaryAttrs
from edgecc.ir.ops.quantize_linear import QuantizeAttrs
from edgecc.ir.ops.reduce import ReduceAttrs
from edgecc.ir.quant import quantize
from edgecc.passes.memory_plan import plan_memory
from edgecc.runner import build_host, run_host
from edgecc.targets.cortex_m import build_firmware, run_qemu
from edgecc.targets.registry import get_target

HAVE_ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")


def compile_for(p: Program, target: str, inplace: bool = False):
    """``inplace``: every node the target can run in place does (memory_plan's "always")."""
    p.g.verify()
    graph, plan = _layout_and_plan(p.g, target)
    record = get_target(target)
    if inplace:
        plan = plan_memory(graph, "always", {i: record.scratch(graph, n) for i, n in
                                             enumerate(graph.nodes)}, record.inplace_scratch)
    files = generate(graph, plan, "model", record.backend_chain())
    files.update(record.runtime_files(files))
    return files, graph


def compare(outs, p: Program):
    bad = []
    for k, (o, e, label) in enumerate(zip(outs, p.expected, p.labels)):
        o = np.asarray(o).reshape(e.shape)
        if not np.array_equal(o, e):
            d = np.abs(o.astype(np.int64) - e.astype(np.int64))
            bad.append(f"case {k} {label}: {np.count_nonzero(d)} of {e.size} differ, max {d.max()}")
    return bad


def identity_input(p: Program, x, qx):
    """x as an arena tensor that dies at its reader (so the memory plan may run the reader in
    place): the graph input through a 1x1 depthwise convolution with weights 1 and equal
    scales (multiplier exactly 1)."""
    c = x.shape[1]
    w = p.const(np.ones((c, 1, 1, 1), I8), qp(np.ones(c), [0] * c, axis=0))
    name = f"id{len(p.g.nodes)}"
    p.g.types[name] = p.g.types[p.input(x, qx)]
    p.g.nodes.append(Node("QConv", (p.g.inputs[-1], w), (name,),
                          ConvAttrs((1, 1), (1, 1), (0, 0, 0, 0), (1, 1), c, None),
                          name=f"identity{len(p.g.nodes)}"))
    return name


def conv_cases(rng, count, depthwise=False, channels=(1, 2, 3, 4, 5, 8, 12, 13, 16, 33),
               dw_channels=(4, 8, 12, 16, 36), name="cm", inplace=False):
    """``inplace``: each case reads an arena tensor that dies at it (identity_input)."""
    p = Program(f"{name}_depthwise" if depthwise else f"{name}_conv")
    for i in range(count):
        kh, kw = (1, 1) if i % 3 == 0 else (int(rng.integers(1, 6)), int(rng.integers(1, 5)))
        if depthwise and i % 3 == 0:
            kh, kw = 3, 3
        strides = (1, 1) if i % 3 == 0 else tuple(int(v) for v in rng.integers(1, 4, 2))
        dil = (1, 1) if i % 3 == 0 else tuple(int(v) for v in rng.integers(1, 3, 2))
        pads = (0, 0, 0, 0) if i % 3 == 0 else tuple(int(v) for v in rng.integers(0, 3, 4))
        c = int(rng.choice(channels))
        m = int(rng.choice([1, 2, 3, 7, 8, 16, 17]))
        if depthwise:
            c = m = int(rng.choice(dw_channels))
        group, cg = (c, 1) if depthwise else (1, c)
        n = int(rng.integers(1, 3))
        size = []
        for k, s, d, pb, pe in ((kh, strides[0], dil[0], pads[0], pads[2]),
                                (kw, strides[1], dil[1], pads[1], pads[3])):
            v = int(rng.integers(9, 13) if depthwise and i % 2 else rng.integers(1, 9))
            while (v + pb + pe - (k - 1) * d - 1) // s + 1 < 1:
                v += 1
            size.append(v)
        out_sp = tuple((size[j] + pads[j] + pads[2 + j] - ((kh, kw)[j] - 1) * dil[j] - 1)
                       // strides[j] + 1 for j in range(2))
        halves, tie = i % 4 == 1, i % 4 == 3
        s_x = 2.0**-4 if halves or tie else rng.uniform(0.01, 0.05)
        s_w = 2.0 ** -rng.integers(5, 9, m) if halves else rng.uniform(0.002, 0.02, m)
        s_w = np.full(m, 2.0**-5) if tie else s_w
        qx, qw = rand_q(rng, I8, s_x), qp(s_w, [0] * m, axis=0)
        if tie:  # multiplier 0.25 on small accumulators: SRDHM ties, then RDBP ties
            x = near(rng, I8, qx, (n, c) + tuple(size), 3)
            w = rng.integers(-3, 4, (m, cg, kh, kw)).astype(I8)
        else:
            x = rng.integers(-128, 128, (n, c) + tuple(size)).astype(I8)
            w = rng.integers(-127, 128, (m, cg, kh, kw)).astype(I8)
        b = rng.integers(-3000, 3000, m).astype(np.int32) if i % 5 != 4 and not tie else None
        qb = qp(s_x * np.asarray(qw.scale), [0] * m, axis=0)
        attrs = ConvAttrs((kh, kw), strides, pads, dil, group, None)
        s_y = 2.0**-7 if tie else fit_scale(
            lambda sy: R.qconv(x, qx, w, qw, b, qp(sy, 0), attrs, out_sp, np.int64, WIDE),
            s_x * float(np.mean(s_w)), halves)
        qy = rand_q(rng, I8, s_y)
        act = None if tie else rand_act(rng, i % 4, qy)  # a clamp would hide the ties
        attrs = ConvAttrs((kh, kw), strides, pads, dil, group, act)
        want = R.qconv(x, qx, w, qw, b, qy, attrs, out_sp, I8, bounds(act, I8, qy))
        inputs = [identity_input(p, x, qx) if inplace else p.input(x, qx), p.const(w, qw)]
        inputs += [p.const(b, qb)] if b is not None else []
        p.node("QConv", inputs, attrs, want, qy,
               f"k={kh}x{kw} s={strides} d={dil} p={pads} c={c} m={m} n={n} act={act}")
    return p


def add_cases(rng, count, name="cm", high=7):
    """Same-shape int8 adds: random scales, and equal power-of-two ones whose output
    multiplier makes (a' + b') / 2 land on halves; clamps."""
    p = Program(f"{name}_add")
    for i in range(count):
        shape = tuple(int(v) for v in rng.integers(1, high, int(rng.integers(1, 5))))
        if i % 3 == 0:
            s_a = s_b = 2.0**-5
            s_y = 2.0 ** -int(rng.integers(3, 5))
        else:
            s_a, s_b = rng.uniform(0.005, 0.1, 2)
            s_y = (s_a + s_b) * rng.uniform(0.6, 1.5)
        qa, qb, qy = rand_q(rng, I8, s_a), rand_q(rng, I8, s_b), rand_q(rng, I8, s_y)
        a = rng.integers(-128, 128, shape).astype(I8)
        b = rng.integers(-128, 128, shape).astype(I8)
        act = rand_act(rng, i % 4, qy)
        want = R.qadd(a, qa, b, qb, qy, I8, bounds(act, I8, qy))
        p.node("QAdd", [p.input(a, qa), p.input(b, qb)], QBinaryAttrs(act), want, qy,
               f"{shape} act={act}")
    return p


def mean_cases(rng, count):
    """Means over H and W (global average pools in NHWC): channel counts on and off multiples
    of four, more than 256 pixels (the int16 lanes' chunks), power-of-two scales (halves)."""
    p = Program("cm_mean")
    for i in range(count):
        n, c = int(rng.integers(1, 3)), int(rng.choice([1, 3, 4, 8, 13, 64]))
        h, w = (17, 19) if i % 4 == 0 else tuple(int(v) for v in rng.integers(1, 9, 2))
        s_x = float(rng.uniform(0.01, 0.1))  # s_y: the multiplier s_x / (s_y h w) below 0.5
        s_y = s_x * max(float(rng.uniform(0.3, 2.0)), 2.5 / (h * w))
        if i % 4 == 2:  # s_x / (s_y h w) = 2^-k: requantization lands on halves
            h, w = [(2, 4), (4, 4), (4, 8), (8, 8)][i % 16 // 4]
            s_x, s_y = 2.0**-4, 2.0**-3
        qx, qy = rand_q(rng, I8, s_x), rand_q(rng, I8, s_y)
        x = rng.integers(-128, 128, (n, h, w, c)).astype(I8)
        want = R.qreduce_mean(x, qx, qy, (1, 2), True, I8)
        p.node("QReduceMean", [p.input(x, qx)], ReduceAttrs((1, 2), True), want, qy,
               f"{(n, h, w, c)}")
    return p


def fc_cases(rng, count):
    """Fully connected layers (K a multiple of 4, any M, batches): per-channel and per-tensor
    weights, ties (multiplier 0.25 on small accumulators), clamps."""
    p = Program("cm_fc")
    for i in range(count):
        mm, k, nn = int(rng.integers(1, 4)), 4 * int(rng.integers(1, 40)), int(rng.integers(1, 20))
        halves, tie = i % 3 == 0, i % 4 == 3
        s_x = 2.0**-5 if halves or tie else rng.uniform(0.01, 0.05)
        s_w = 2.0 ** -rng.integers(5, 9, nn) if halves else rng.uniform(0.002, 0.02, nn)
        s_w = np.full(nn, 2.0**-4) if tie else s_w
        qx, qw = rand_q(rng, I8, s_x), qp(s_w, [0] * nn, axis=0)
        if tie:
            x, w = near(rng, I8, qx, (mm, k), 3), rng.integers(-3, 4, (nn, k)).astype(I8)
        else:
            x, w = rng.integers(-128, 128, (mm, k)).astype(I8), rng.integers(-127, 128, (nn, k)).astype(I8)
        b = rng.integers(-3000, 3000, nn).astype(np.int32) if i % 2 and not tie else None
        s_y = 2.0**-7 if tie else fit_scale(
            lambda sy: R.qgemm(x, qx, w, qw, b, qp(sy, 0), np.int64, WIDE),
            s_x * float(np.mean(s_w)), halves)
        qy = rand_q(rng, I8, s_y)
        act = None if tie else rand_act(rng, i % 4, qy)
        want = R.qgemm(x, qx, w, qw, b, qy, I8, bounds(act, I8, qy))
        inputs = [p.input(x, qx), p.const(w, qw)]
        if b is not None:
            inputs.append(p.const(b, qp(s_x * np.asarray(qw.scale), [0] * nn, axis=0)))
        p.node("QGemm", inputs, GemmAttrs(trans_b=True, activation=act), want, qy,
               f"{mm}x{k}x{nn} act={act}")
    return p


def quantize_cases(rng, count):
    """The float input's quantization: random scales and zero points; values on exact halves
    (power-of-two scales: ties go to even), past the int8 range, +-inf, +-1e30 and NaN (which
    becomes the zero point, as in the portable kernel)."""
    p = Program("cm_quantize")
    for i in range(count):
        scale = 2.0 ** -int(rng.integers(2, 8)) if i % 2 else float(rng.uniform(0.001, 0.2))
        qy = rand_q(rng, I8, scale)
        zp = int(qy.zero_point[0])
        x = (rng.standard_normal(int(rng.integers(1, 40))) * 80 * scale).astype(np.float32)
        halves = ((rng.integers(-140, 140, 8) + 0.5) * scale).astype(np.float32)
        special = np.array([np.inf, -np.inf, 1e30, -1e30, np.nan, 0.0, -0.0], np.float32)
        x = np.concatenate([x, halves, special]).astype(np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            want = quantize(np.nan_to_num(x, nan=0.0), scale, zp)
        want[np.isnan(x)] = zp
        p.node("QuantizeLinear", [p.input(x)], QuantizeAttrs(qy), want, qy, f"n={x.size}")
    return p


CASES = {"conv": lambda rng: conv_cases(rng, 24), "depthwise": lambda rng: conv_cases(rng, 24, True),
         "add": lambda rng: add_cases(rng, 24), "mean": lambda rng: mean_cases(rng, 12),
         "quantize": lambda rng: quantize_cases(rng, 8), "fc": lambda rng: fc_cases(rng, 12),
         "depthwise_inplace": lambda rng: conv_cases(rng, 24, True, inplace=True)}


@pytest.fixture(scope="module", params=list(CASES))
def program(request):
    kind = request.param
    rng = np.random.default_rng(SEED + 12 + list(CASES).index(kind))
    p = CASES[kind](rng)
    files, graph = compile_for(p, "cortex-m7", inplace=kind == "depthwise_inplace")
    return kind, p, files, graph


def test_cases_are_taken_by_the_generated_kernels(program):
    kind, p, files, _ = program
    marker = {"depthwise": "depthwise convolution,", "conv": "patches sign-extended into the",
              "add": "TFLite's Add with every multiplier", "mean": "pixels per channel,",
              "quantize": "on the FPU,", "fc": "1x1 convolution,",
              "depthwise_inplace": "depthwise convolution,"}[kind]
    code = files["model.c"]
    count = layers_of(code, marker)
    # depthwise_inplace: the identities before the cases are generated depthwise layers too
    assert count == len(p.labels) if kind != "depthwise_inplace" else count > len(p.labels)
    if kind == "depthwise":  # both weight layouts (cortex_m/depthwise.py NARROW_PIXELS)
        assert "stored as int8 words" in code
        assert "packed so at compile time, doubled" in code
    if kind == "depthwise_inplace":  # every batch-1 case in place (cortex_m/depthwise_inplace)
        single = sum(x.shape[0] == 1 and y.shape[2] * y.shape[3] <= x.shape[2] * x.shape[3]
                     for x, y in zip(p.feeds, p.expected))
        assert single >= 8 and layers_of(code, "in place (y is x's buffer") >= single
    for call in ("arm_depthwise_conv_wrapper_s8(", "arm_convolve_wrapper_s8(",
                 "arm_elementwise_add_s8("):  # (an identity may run on CMSIS-NN)
        assert call not in code or kind == "depthwise_inplace"


@pytest.mark.parametrize("opt", ["-O1", "-O2", "-O3"])
def test_on_the_host_equals_the_numpy_model(program, opt, tmp_path):
    """Sanitized at -O1; at -O2 and -O3 as users build it (gcc 12's ipa-cp bug once dropped
    the patch gathering there, cortex_m/conv.py)."""
    _, p, files, graph = program
    build = build_host(files, graph, "model", str(tmp_path), sanitize=opt == "-O1", opt=opt)
    assert not compare(run_host(build, p.feeds), p)


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("target", ["cortex-m7", "cortex-m4"])
def test_on_cortex_m_equals_the_numpy_model(program, target, tmp_path):
    _, p, files, graph = program
    fw = build_firmware(files, str(tmp_path / "fw"), target,
                        input_arrays=[np.asarray(f) for f in p.feeds])
    run = run_qemu(fw.elf, target, timeout=300)
    assert len(run.outputs) == len(p.expected)
    assert not compare(run.outputs, p)
