"""edgecc's NEON kernels (edgecc/backends/neon/, issue 14) bit for bit against the numpy model
of the integer math (edgecc/ir/quant_ref.py) and the portable kernels, under qemu-aarch64.

* The requantization helpers (neon_qhelpers.c.j2: SQSHL, SQRDMULH, SRSHL with the halves-away
  fix; the forms without a left shift and with SSRA) against int8_helpers.c.j2's scalar
  edgecc_requantize on edge and random values, in one aarch64 program.
* Random int8 one-group and depthwise convolutions, fully connected layers and means (fixed
  seeds) as one IR graph per kind, one node per case: odd channel counts, kernels up to 5x4,
  strides, dilations, padding, batches, fused clamps, power-of-two scales (ties), left shifts,
  long right shifts, extreme inputs and weights (-128 weights take the SPLIT form). Compiled
  for aarch64-neon and aarch64-neon-dotprod (every case must be taken by the NEON kernel), run
  under qemu-aarch64 (-cpu max for SDOT): equal to the model (and the portable build on the
  host) byte for byte.
* Random float convolutions (one group with fused activations and residual adds, depthwise)
  and fully connected layers (Gemm, MatMul) within 1e-4 of the portable kernels.
"""
import os
import shutil
import subprocess

import numpy as np
import pytest
from int8_testlib import (I8, WIDE, Program, bounds, fit_scale, qadd_program, qp, rand_act,
                          rand_q)

from edgecc.backends.codegen import generate
from edgecc.compiler.driver import _layout_and_plan
from edgecc.ir import quant_ref as R
from edgecc.ir.ops.conv import ConvAttrs
from edgecc.passes.memory_plan import plan_memory
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-gcc") is None,
    reason="needs qemu-aarch64 (qemu-user) and aarch64-linux-gnu-gcc")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, "edgecc", "backends")
TARGETS = ("aarch64-neon", "aarch64-neon-dotprod")
# each kernel's first comment, once per layer
MARKERS = {"conv": "with zero weights) */", "depthwise": "SMULL + SADDW per tap */"}

REQUANT_MAIN = r"""
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <arm_neon.h>
%(scalar)s
%(neon)s
static uint64_t state = 88172645463325252ull;
static uint32_t next(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return (uint32_t)state; }
int main(void)
{
    static const int32_t special[] = {INT32_MIN, INT32_MIN + 1, -1073741825, -1073741824, -65537,
        -65536, -32768, -3, -2, -1, 0, 1, 2, 3, 32767, 65536, 1073741823, 1073741824,
        INT32_MAX - 1, INT32_MAX};
    const int n_special = (int)(sizeof special / sizeof special[0]);
    long bad = 0, checked = 0;
    int32_t shift, i, k;
    for (shift = -31; shift <= 31; ++shift) {
        for (i = 0; i < 4000; ++i) {
            int32_t acc[4], m0[4], got[4];
            int32x4_t r;
            for (k = 0; k < 4; ++k) {
                const uint32_t u = next();
                acc[k] = i < n_special * 4 ? special[(i * 4 + k) %% n_special] :
                         (u & 3) == 0 ? (int32_t)(next() >> (next() %% 32)) * ((u & 4) ? -1 : 1) :
                         (int32_t)next();
                m0[k] = (i & 1) ? (int32_t)(1073741824u + (next() >> 2)) :
                        (int32_t)((next() >> 1) | 1073741824u);
                if (i %% 7 == 0) m0[k] = 1073741824;
                if (i %% 11 == 0) m0[k] = INT32_MAX;
            }
            r = edgecc_neon_requantize(vld1q_s32(acc), vld1q_s32(m0),
                                       vdupq_n_s32(shift > 0 ? shift : 0),
                                       vdupq_n_s32(shift > 0 ? 0 : shift));
            vst1q_s32(got, r);
            if (shift <= 0) {  /* the form without a left shift gives the same */
                int32_t right[4];
                vst1q_s32(right, edgecc_neon_requantize_right(vld1q_s32(acc), vld1q_s32(m0),
                                                              vdupq_n_s32(shift)));
                bad += memcmp(right, got, sizeof got) != 0;
            }
            if (shift <= -1) {  /* and, right shifts only, the form with SSRA */
                int32_t down[4];
                vst1q_s32(down, edgecc_neon_requantize_down(vld1q_s32(acc), vld1q_s32(m0),
                                                            vdupq_n_s32(shift)));
                bad += memcmp(down, got, sizeof got) != 0;
            }
            for (k = 0; k < 4; ++k, ++checked)
                if (got[k] != edgecc_requantize(acc[k], m0[k], shift)) {
                    if (bad < 5) printf("acc %%d m0 %%d shift %%d: neon %%d scalar %%d\n", acc[k], m0[k], shift, got[k], edgecc_requantize(acc[k], m0[k], shift));
                    ++bad;
                }
        }
    }
    printf("checked %%ld bad %%ld\n", checked, bad);
    return bad != 0;
}
"""


def test_requantization_matches_the_scalar_helper(tmp_path):
    read = lambda *p: open(os.path.join(TEMPLATES, *p)).read()  # noqa: E731
    src = REQUANT_MAIN % dict(scalar=read("generic", "templates", "int8_helpers.c.j2"),
                              neon=read("neon", "templates", "neon_qhelpers.c.j2"))
    (tmp_path / "rq.c").write_text(src)
    exe = str(tmp_path / "rq")
    subprocess.run(["aarch64-linux-gnu-gcc", "-static", "-O2", "-std=c99", "-Wall", "-Wextra",
                    "-Werror", "-Wno-unused-function", "-o", exe, str(tmp_path / "rq.c")],
                   check=True)
    proc = subprocess.run(["qemu-aarch64", exe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert "bad 0" in proc.stdout and "checked 1008000" in proc.stdout


def edge_values(rng, shape, kind, low=-128):
    """kind 0: random in [low, 127]; 1: +127 / low at random; 2: all 127; 3: all low."""
    if kind == 0:
        return rng.integers(low, 128, shape).astype(I8)
    if kind == 1:
        return np.where(rng.integers(0, 2, shape) == 1, 127, low).astype(I8)
    return np.full(shape, 127 if kind == 2 else low, I8)


def conv_cases(rng, count, depthwise=False):
    p = Program("neon_depthwise" if depthwise else "neon_conv")
    for i in range(count):
        pointwise = i % 3 == 0
        kh, kw = (1, 1) if pointwise else (int(rng.integers(1, 6)), int(rng.integers(1, 5)))
        strides = ((1, 1) if pointwise and i % 2 == 0
                   else tuple(int(v) for v in rng.integers(1, 4, 2)))
        dil = (1, 1) if pointwise else tuple(int(v) for v in rng.integers(1, 3, 2))
        pads = (0, 0, 0, 0) if pointwise else tuple(int(v) for v in rng.integers(0, 3, 4))
        c = int(rng.choice([1, 2, 3, 5, 13, 16, 17, 31, 32, 33, 48, 64]))
        m = int(rng.choice([1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33]))
        if depthwise:
            c = m = int(rng.choice([2, 3, 8, 15, 16, 17, 24, 31, 32, 33, 48]))
            kh, kw = (3, 3) if i % 4 == 1 else (kh, kw)
        group, cg = (c, 1) if depthwise else (1, c)
        n = int(rng.integers(1, 3))
        size = []
        for k, s, d, pb, pe in ((kh, strides[0], dil[0], pads[0], pads[2]),
                                (kw, strides[1], dil[1], pads[1], pads[3])):
            v = int(rng.integers(1, 10))
            while (v + pb + pe - (k - 1) * d - 1) // s + 1 < 1:
                v += 1
            size.append(v)
        out_sp = tuple((size[j] + pads[j] + pads[2 + j] - ((kh, kw)[j] - 1) * dil[j] - 1)
                       // strides[j] + 1 for j in range(2))
        edge = i % 4
        halves = i % 5 == 2
        s_x = 2.0**-4 if halves else rng.uniform(0.01, 0.05)
        s_w = 2.0 ** -rng.integers(5, 9, m) if halves else rng.uniform(0.002, 0.02, m)
        qx, qw = rand_q(rng, I8, s_x), qp(s_w, [0] * m, axis=0)
        x = edge_values(rng, (n, c) + tuple(size), edge)
        w = edge_values(rng, (m, cg, kh, kw), edge, low=-128 if i % 6 == 5 else -127)
        b = rng.integers(-3000, 3000, m).astype(np.int32) if i % 5 != 4 else None
        qb = qp(s_x * np.asarray(qw.scale), [0] * m, axis=0)
        attrs = ConvAttrs((kh, kw), strides, pads, dil, group, None)
        s_y = fit_scale(lambda sy: R.qconv(x, qx, w, qw, b, qp(sy, 0), attrs, out_sp, np.int64,
                                           WIDE), s_x * float(np.mean(s_w)), halves)
        if i % 7 == 6:  # multipliers above 1: a left shift, saturating
            s_y = s_x * float(np.min(s_w)) / 3.0
        if i % 7 == 3:  # long right shifts
            s_y = s_x * float(np.max(s_w)) * 2.0**23
        qy = rand_q(rng, I8, s_y)
        act = rand_act(rng, i % 4, qy)
        attrs = ConvAttrs((kh, kw), strides, pads, dil, group, act)
        want = R.qconv(x, qx, w, qw, b, qy, attrs, out_sp, I8, bounds(act, I8, qy))
        inputs = [p.input(x, qx), p.const(w, qw)] + ([p.const(b, qb)] if b is not None else [])
        p.node("QConv", inputs, attrs, want, qy,
               f"k={kh}x{kw} s={strides} d={dil} p={pads} c={c} m={m} n={n} edge={edge}")
    return p


def compile_for(p: Program, target: str):
    graph, plan = _layout_and_plan(p.g, target)
    record = get_target(target)
    files = generate(graph, plan, "model", record.backend_chain())
    return files, graph


def compare(outs, p: Program, what: str):
    bad = []
    for k, (o, e, label) in enumerate(zip(outs, p.expected, p.labels)):
        if not np.array_equal(o, e):
            d = np.abs(o.astype(np.int64) - e.astype(np.int64))
            bad.append(f"{what} case {k} {label}: {np.count_nonzero(d)} of {e.size} differ, "
                       f"max {d.max()}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
def test_int8_convolutions_are_bit_exact(tmp_path, kind):
    p = conv_cases(np.random.default_rng(14), 36, kind == "depthwise")
    p.g.verify()
    generic = generate(p.g, plan_memory(p.g), "model", get_target("generic").backend_chain())
    outs = run_host(build_host(generic, p.g, "model", str(tmp_path / "generic")), p.feeds)
    compare(outs, p, "generic")
    for target in TARGETS:
        files, graph = compile_for(p, target)
        code = files["model.c"]
        assert code.count(MARKERS[kind]) == len(p.labels), f"{target}: a case left NEON"
        if kind == "conv":
            assert "vdotq_laneq_s32" in code and "vmlal_high_s8" in code and "vpadalq_s16" in code
        build = build_host(files, graph, "model", str(tmp_path / target),
                           **get_target(target).build_options())
        compare(run_host(build, p.feeds), p, target)


def float_conv_cases(rng, count, depthwise=False):
    """Random one-group float convolutions, fused Relu / Clip / LeakyRelu, and every third one
    followed by a residual Add of another input (which the layout pass fuses into the
    ConvNHWC as a 4th input; its output is then not a graph output)."""
    from edgecc.ir import Activation, DType, Node, TensorType
    p = Program("neon_float_conv")
    for i in range(count):
        pointwise = i % 3 == 0
        kh, kw = (1, 1) if pointwise else (int(rng.integers(1, 6)), int(rng.integers(1, 5)))
        strides = ((1, 1) if pointwise and i % 2 == 0
                   else tuple(int(v) for v in rng.integers(1, 4, 2)))
        dil = (1, 1) if pointwise else tuple(int(v) for v in rng.integers(1, 3, 2))
        pads = (0, 0, 0, 0) if pointwise else tuple(int(v) for v in rng.integers(0, 3, 4))
        c = int(rng.choice([1, 2, 3, 4, 5, 8, 13, 16, 17, 32, 33]))
        m = int(rng.choice([1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 33]))
        if depthwise:
            c = m = int(rng.choice([2, 3, 4, 5, 8, 15, 16, 17, 33]))
            kh, kw = (3, 3) if i % 4 == 1 else (kh, kw)
        group, cg = (c, 1) if depthwise else (1, c)
        n = int(rng.integers(1, 3))
        size = []
        for k, s, d, pb, pe in ((kh, strides[0], dil[0], pads[0], pads[2]),
                                (kw, strides[1], dil[1], pads[1], pads[3])):
            v = int(rng.integers(1, 10))
            while (v + pb + pe - (k - 1) * d - 1) // s + 1 < 1:
                v += 1
            size.append(v)
        out_sp = tuple((size[j] + pads[j] + pads[2 + j] - ((kh, kw)[j] - 1) * dil[j] - 1)
                       // strides[j] + 1 for j in range(2))
        act = [None, Activation("Relu"), Activation("Clip", -0.5, 0.7),
               Activation("LeakyRelu", 0.1)][i % 4]
        residual = i % 3 == 1 and not depthwise
        x = rng.standard_normal((n, c) + tuple(size)).astype(np.float32)
        w = rng.standard_normal((m, cg, kh, kw)).astype(np.float32)
        inputs = [p.input(x), p.const(w)]
        if i % 5 != 4:
            inputs.append(p.const(rng.standard_normal(m).astype(np.float32)))
        placeholder = np.zeros((n, m) + out_sp, np.float32)
        label = f"k={kh}x{kw} s={strides} d={dil} p={pads} c={c} m={m} n={n} act={act}"
        if not residual:
            p.node("Conv", inputs, ConvAttrs((kh, kw), strides, pads, dil, group, act),
                   placeholder, label=label)
            continue
        mid = f"mid{i}"
        p.g.types[mid] = TensorType(DType.FLOAT32, placeholder.shape)
        p.g.nodes.append(Node("Conv", tuple(inputs), (mid,),
                              ConvAttrs((kh, kw), strides, pads, dil, 1, None), name=f"conv{i}"))
        # r: a 1x1 convolution of another input (NHWC too, so the Add follows NHWC and fuses)
        r, c2 = f"res{i}", int(rng.integers(1, 6))
        p.g.types[r] = TensorType(DType.FLOAT32, placeholder.shape)
        rin = [p.input(rng.standard_normal((n, c2) + out_sp).astype(np.float32)),
               p.const(rng.standard_normal((m, c2, 1, 1)).astype(np.float32))]
        p.g.nodes.append(Node("Conv", tuple(rin), (r,), ConvAttrs((1, 1), (1, 1), (0, 0, 0, 0),
                                                                  (1, 1), 1, None), name=r))
        p.node("Add", [mid, r], None, placeholder, label=label + " +residual")
    return p


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
def test_float_convolutions_match_the_portable_kernels(tmp_path, kind):
    p = float_conv_cases(np.random.default_rng(15), 30, kind == "depthwise")
    p.g.verify()
    generic = generate(p.g, plan_memory(p.g), "model", get_target("generic").backend_chain())
    want = run_host(build_host(generic, p.g, "model", str(tmp_path / "generic")), p.feeds)
    files, graph = compile_for(p, "aarch64-neon")
    code = files["model.c"]
    convs = sum(n.op == "Conv" for n in p.g.nodes)
    if kind == "conv":
        assert code.count("FMLA by element") == convs, "a case left the NEON kernel"
        assert code.count("(const float *x, const float *res, float *y)") >= 1  # a residual
    else:
        assert code.count("FMLA per tap, 4 channels per vector") == convs
    build = build_host(files, graph, "model", str(tmp_path / "neon"),
                       **get_target("aarch64-neon").build_options())
    got = run_host(build, p.feeds)
    bad = []
    for k, (o, e, label) in enumerate(zip(got, want, p.labels)):
        scale = float(np.max(np.abs(e))) or 1.0
        if o.shape != e.shape or not np.all(np.abs(o - e) <= 1e-4 * scale):
            bad.append(f"case {k} {label}: max err {np.max(np.abs(o - e)) / scale:.2e}")
    assert not bad, "\n".join(bad)


def mean_cases(rng, count):
    """Means over axes 1 and 2 of NHWC int8 tensors (global average pools): channels on and
    off multiples of 16, more than 256 pixels (the int16 sums' flush), power-of-two scales
    (ties), an output scale far below the input's (a left shift), extreme inputs."""
    from edgecc.ir.ops.reduce import ReduceAttrs
    p = Program("neon_mean")
    for i in range(count):
        n, c = int(rng.integers(1, 3)), int(rng.choice([1, 3, 15, 16, 17, 64, 70]))
        h, w = (17, 19) if i % 4 == 0 else tuple(int(v) for v in rng.integers(1, 9, 2))
        s_x = float(rng.uniform(0.01, 0.1))
        s_y = s_x * max(float(rng.uniform(0.3, 2.0)), 2.5 / (h * w))
        if i % 4 == 2:
            h, w = [(2, 4), (4, 4), (4, 8), (8, 8)][i % 16 // 4]
            s_x, s_y = 2.0**-4, 2.0**-3
        if i % 5 == 3:
            s_y = s_x / (h * w) / 3.0  # multiplier above 1: a left shift
        qx, qy = rand_q(rng, I8, s_x), rand_q(rng, I8, s_y)
        x = edge_values(rng, (n, h, w, c), i % 4)
        want = R.qreduce_mean(x, qx, qy, (1, 2), True, I8)
        p.node("QReduceMean", [p.input(x, qx)], ReduceAttrs((1, 2), True), want, qy,
               f"{(n, h, w, c)}")
    return p


def test_int8_means_are_bit_exact(tmp_path):
    p = mean_cases(np.random.default_rng(16), 24)
    p.g.verify()
    for target in TARGETS:
        files, graph = compile_for(p, target)
        assert files["model.c"].count("int16 sums of 256 pixels, int32 totals */") == len(p.labels)
        build = build_host(files, graph, "model", str(tmp_path / target),
                           **get_target(target).build_options())
        compare(run_host(build, p.feeds), p, target)


def fc_cases(rng, count):
    """Fully connected layers (QGemm, w [N, K]): rows, K and N on and off multiples of 16,
    extreme inputs and weights (-128 weights: the SPLIT form), left and long right shifts."""
    from edgecc.ir.ops.gemm import GemmAttrs
    p = Program("neon_fc")
    for i in range(count):
        rows = int(rng.integers(1, 4))
        k = int(rng.choice([1, 3, 15, 16, 17, 40, 64, 100, 640]))
        nn = int(rng.choice([1, 5, 8, 9, 12, 16, 17, 40, 128]))
        edge, halves = i % 4, i % 3 == 0
        s_x = 2.0**-5 if halves else rng.uniform(0.01, 0.05)
        s_w = 2.0 ** -rng.integers(5, 9, nn) if halves else rng.uniform(0.002, 0.02, nn)
        qx, qw = rand_q(rng, I8, s_x), qp(s_w, [0] * nn, axis=0)
        x = edge_values(rng, (rows, k), edge)
        w = edge_values(rng, (nn, k), edge, low=-128 if i % 6 == 5 else -127)
        b = rng.integers(-3000, 3000, nn).astype(np.int32) if i % 2 else None
        s_y = fit_scale(lambda sy: R.qgemm(x, qx, w, qw, b, qp(sy, 0), np.int64,  # noqa: B023
                                           WIDE), s_x * float(np.mean(s_w)), halves)
        if i % 7 == 6:
            s_y = s_x * float(np.min(s_w)) / 3.0
        if i % 7 == 3:
            s_y = s_x * float(np.max(s_w)) * 2.0**23
        qy = rand_q(rng, I8, s_y)
        act = rand_act(rng, i % 4, qy)
        want = R.qgemm(x, qx, w, qw, b, qy, I8, bounds(act, I8, qy))
        inputs = [p.input(x, qx), p.const(w, qw)]
        if b is not None:
            inputs.append(p.const(b, qp(s_x * np.asarray(qw.scale), [0] * nn, axis=0)))
        p.node("QGemm", inputs, GemmAttrs(trans_b=True, activation=act), want, qy,
               f"{rows}x{k}x{nn} edge={edge} act={act}")
    return p


def test_int8_fully_connected_layers_are_bit_exact(tmp_path):
    p = fc_cases(np.random.default_rng(17), 24)
    p.g.verify()
    for target in TARGETS:
        files, graph = compile_for(p, target)
        assert files["model.c"].count(MARKERS["conv"]) == len(p.labels), target
        build = build_host(files, graph, "model", str(tmp_path / target),
                           **get_target(target).build_options())
        compare(run_host(build, p.feeds), p, target)


def test_float_fully_connected_layers_match_the_portable_kernels(tmp_path):
    """Gemm (B as [K, N] and, with trans_b, [N, K]; a bias row, one value or none; fused
    activations) and MatMul by a constant, rows and sizes on and off multiples of 4 and 8."""
    from edgecc.ir import Activation
    from edgecc.ir.ops.gemm import GemmAttrs, MatMulAttrs
    rng = np.random.default_rng(18)
    p = Program("neon_float_fc")
    for i in range(16):
        r, k, n = (int(rng.integers(1, 4)), int(rng.choice([1, 3, 4, 17, 64, 100])),
                   int(rng.choice([1, 5, 8, 9, 16, 33])))
        x = rng.standard_normal((r, k)).astype(np.float32)
        out = np.zeros((r, n), np.float32)
        if i % 4 == 3:
            p.node("MatMul", [p.input(x), p.const(rng.standard_normal((k, n)).astype(np.float32))],
                   MatMulAttrs(), out, label=f"matmul {r}x{k}x{n}")
            continue
        trans_b = bool(i % 2)
        w = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
        inputs = [p.input(x), p.const(w)]
        if i % 3:
            inputs.append(p.const(rng.standard_normal((1, n) if i % 3 == 1 else (1,))
                                  .astype(np.float32)))
        act = [None, Activation("Relu"), Activation("Clip", -0.5, 0.7)][i % 3]
        p.node("Gemm", inputs, GemmAttrs(trans_b=trans_b, activation=act), out,
               label=f"gemm {r}x{k}x{n} trans_b={trans_b} act={act}")
    p.g.verify()
    generic = generate(p.g, plan_memory(p.g), "model", get_target("generic").backend_chain())
    want = run_host(build_host(generic, p.g, "model", str(tmp_path / "generic")), p.feeds)
    files, graph = compile_for(p, "aarch64-neon")
    assert files["model.c"].count("FMLA by element") == len(p.labels)
    build = build_host(files, graph, "model", str(tmp_path / "neon"),
                       **get_target("aarch64-neon").build_options())
    for k, (o, e, label) in enumerate(zip(run_host(build, p.feeds), want, p.labels)):
        scale = float(np.max(np.abs(e))) or 1.0
        assert np.all(np.abs(o - e) <= 1e-4 * scale), f"case {k} {label}"


def test_int8_adds_are_bit_exact(tmp_path):
    """Same-shape QAdds: sizes on and off multiples of 16, random and power-of-two scales, an
    output scale far below the inputs' (a left shift), fused clamps, extreme inputs."""
    p = qadd_program("neon_add", np.random.default_rng(19), 24, edge_values)
    p.g.verify()
    for target in TARGETS:
        files, graph = compile_for(p, target)
        assert files["model.c"].count("requantized, added, requantized */") == len(p.labels)
        build = build_host(files, graph, "model", str(tmp_path / target),
                           **get_target(target).build_options())
        compare(run_host(build, p.feeds), p, target)


def test_float_average_pools_match_the_portable_kernels(tmp_path):
    """Global float AveragePools of a convolution's (NHWC) output go NHWC (a ReduceMean over H
    and W, no transpose); others stay NCHW. Both within 1e-5 of the portable build."""
    from edgecc.ir import DType, Node, TensorType
    from edgecc.ir.ops.pool import PoolAttrs
    rng = np.random.default_rng(20)
    p = Program("neon_avgpool")
    for i, (n, c, h, w) in enumerate([(1, 64, 4, 4), (2, 3, 5, 7), (1, 17, 8, 8), (1, 5, 6, 6)]):
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        mid = f"mid{i}"
        p.g.types[mid] = TensorType(DType.FLOAT32, x.shape)
        wc = p.const(rng.standard_normal((c, c, 1, 1)).astype(np.float32))
        p.g.nodes.append(Node("Conv", (p.input(x), wc), (mid,),
                              ConvAttrs((1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, None),
                              name=f"conv{i}"))
        if i < 3:
            p.node("AveragePool", [mid], PoolAttrs((h, w), (1, 1), (0, 0, 0, 0), (1, 1)),
                   np.zeros((n, c, 1, 1), np.float32), label=f"global {(n, c, h, w)}")
        else:
            p.node("AveragePool", [mid], PoolAttrs((2, 2), (2, 2), (0, 0, 0, 0), (1, 1)),
                   np.zeros((n, c, h // 2, w // 2), np.float32), label=f"2x2 {(n, c, h, w)}")
    p.g.verify()
    generic = generate(p.g, plan_memory(p.g), "model", get_target("generic").backend_chain())
    want = run_host(build_host(generic, p.g, "model", str(tmp_path / "generic")), p.feeds)
    files, graph = compile_for(p, "aarch64-neon")
    assert sum(n.op == "ReduceMean" for n in graph.nodes) == 3
    build = build_host(files, graph, "model", str(tmp_path / "neon"),
                       **get_target("aarch64-neon").build_options())
    for k, (o, e, label) in enumerate(zip(run_host(build, p.feeds), want, p.labels)):
        assert np.allclose(o, e, rtol=1e-5, atol=1e-6), f"case {k} {label}"
