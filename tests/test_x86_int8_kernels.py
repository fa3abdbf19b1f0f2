"""edgecc's AVX2 int8 kernels (edgecc/backends/x86/int8_*.py, issue 13) bit for bit against the
numpy model of the integer math (edgecc/ir/quant_ref.py) and against the portable kernels.

Random layers (fixed seed) are built as one IR graph, one node per case, compiled once for
x86-avx2 (NHWC, the AVX2 kernels) and once for generic (NCHW, portable C) and run under ASan +
UBSan: both must equal the model, byte for byte. Cases cover odd and non-multiple-of-8/16/32
channel counts, strides, dilations, padding, batches, fused clamps, power-of-two scales (ties),
left shifts (multipliers above 1), right shifts past 22 (the general requantization rather
than the short form), and the vpmaddubsw saturation edge: inputs at the int8
maximum and minimum against weight pairs (127, 127), (-128, -128), (127, -128) in the same
pairs. Every case must be taken by an AVX2 kernel (a silent fallback fails).

The same C is built for each x86 target (X86_TARGETS): x86-avx2, and x86-avx512-vnni (whose
flags select the convolutions' and fully connected layers' vpdpbusd paths) when the CPU has
AVX-512 VL and VNNI (skipped otherwise); both builds must equal the model and the generic one.
"""
import numpy as np
import pytest
from int8_testlib import (I8, SEED, WIDE, Program, bounds, fit_scale, layers_of, qadd_program, qp,
                          rand_act, rand_q)

from edgecc.backends.codegen import generate
from edgecc.compiler.driver import _layout_and_plan
from edgecc.ir import quant_ref as R
from edgecc.ir.ops.conv import ConvAttrs
from edgecc.ir.ops.gemm import GemmAttrs
from edgecc.ir.ops.pool import PoolAttrs
from edgecc.ir.ops.quantize_linear import QuantizeAttrs
from edgecc.ir.ops.reduce import ReduceAttrs
from edgecc.ir.quant import quantize
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target


def have_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx2" in flags and " fma" in flags


def have_vnni() -> bool:
    """The CPU runs x86-avx512-vnni builds: AVX-512 F, BW, VL and VNNI (Linux's flag names)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return False
    return {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"} <= set(flags)


pytestmark = pytest.mark.skipif(not have_avx2(), reason="the CPU lacks AVX2/FMA")
CFLAGS = get_target("x86-avx2").host_cflags
X86_TARGETS = ["x86-avx2", pytest.param("x86-avx512-vnni", marks=pytest.mark.skipif(
    not have_vnni(), reason="the CPU lacks AVX-512 VL or VNNI"))]


def compile_for(p: Program, target: str):
    p.g.verify()
    graph, plan = _layout_and_plan(p.g, target)
    record = get_target(target)
    files = generate(graph, plan, "model", record.backend_chain())
    files.update(record.runtime_files(files))
    return files, graph


def edge_inputs(rng, shape, kind):
    """kind 0: random; 1: all +127/-128 at random; 2: all 127; 3: all -128."""
    if kind == 0:
        return rng.integers(-128, 128, shape).astype(I8)
    if kind == 1:
        return np.where(rng.integers(0, 2, shape) == 1, 127, -128).astype(I8)
    return np.full(shape, 127 if kind == 2 else -128, I8)


def edge_weights(rng, shape, kind):
    """kind 0: random in [-127, 127]; 1: pairs of equal extremes (127, 127) / (-128, -128) and
    (127, -128); 2: all -128; 3: all 127."""
    if kind == 0:
        return rng.integers(-127, 128, shape).astype(I8)
    if kind == 1:
        flat = rng.choice(np.array([127, -128], I8), int(np.prod(shape)))
        return flat.reshape(shape)
    return np.full(shape, -128 if kind == 2 else 127, I8)


def conv_cases(rng, count, depthwise=False):
    p = Program("x86_depthwise" if depthwise else "x86_conv")
    for i in range(count):
        pointwise = i % 3 == 0
        kh, kw = (1, 1) if pointwise else (int(rng.integers(1, 6)), int(rng.integers(1, 5)))
        if depthwise and i % 4 == 1:
            kh, kw = 3, 3
        strides = ((1, 1) if pointwise and i % 2 == 0
                   else tuple(int(v) for v in rng.integers(1, 4, 2)))
        dil = (1, 1) if pointwise else tuple(int(v) for v in rng.integers(1, 3, 2))
        pads = (0, 0, 0, 0) if pointwise else tuple(int(v) for v in rng.integers(0, 3, 4))
        c = int(rng.choice([1, 2, 3, 5, 8, 13, 16, 17, 24, 31, 33, 40, 64]))
        m = int(rng.choice([1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 33, 40]))
        if depthwise:
            c = m = int(rng.choice([2, 3, 8, 15, 16, 17, 24, 31, 32, 33, 48, 64, 72, 97]))  # (1: group 1)
        wide = depthwise and i % 4 == 1  # the VNNI row loop's shapes: 3x3, stride 1 or 2
        if wide:
            strides, dil = ((1, 1) if i % 8 == 1 else (2, 2)), (1, 1)
            pads = (1, 1, 1, 1) if i % 16 == 1 else tuple(int(v) for v in rng.integers(0, 3, 4))
            c = m = (8, 48, 48, 40, 64, 16)[i // 4 % 6]
        big = not depthwise and i == count - 1  # the VNNI row form flipping rows per output row
        if big:
            kh, kw, dil, c = 3, 3, (1, 1), 3
        group, cg = (c, 1) if depthwise else (1, c)
        n = int(rng.integers(1, 3))
        size = []
        for k, s, d, pb, pe in ((kh, strides[0], dil[0], pads[0], pads[2]),
                                (kw, strides[1], dil[1], pads[1], pads[3])):
            v = int(rng.integers(1, 10)) + (8 if wide else 0) + (120 if big else 0)
            while (v + pb + pe - (k - 1) * d - 1) // s + 1 < 1:
                v += 1
            size.append(v)
        out_sp = tuple((size[j] + pads[j] + pads[2 + j] - ((kh, kw)[j] - 1) * dil[j] - 1)
                       // strides[j] + 1 for j in range(2))
        edge = i // 4 % 4 if wide else i % 4  # 0: random; 1..3: the saturation edge
        halves = i % 5 == 2
        s_x = 2.0**-4 if halves else rng.uniform(0.01, 0.05)
        s_w = 2.0 ** -rng.integers(5, 9, m) if halves else rng.uniform(0.002, 0.02, m)
        qx, qw = rand_q(rng, I8, s_x), qp(s_w, [0] * m, axis=0)
        x = edge_inputs(rng, (n, c) + tuple(size), edge if edge < 3 else int(rng.integers(1, 4)))
        w = edge_weights(rng, (m, cg, kh, kw), edge)
        b = rng.integers(-3000, 3000, m).astype(np.int32) if i % 5 != 4 else None
        qb = qp(s_x * np.asarray(qw.scale), [0] * m, axis=0)
        attrs = ConvAttrs((kh, kw), strides, pads, dil, group, None)
        raw = lambda sy: R.qconv(x, qx, w, qw, b, qp(sy, 0), attrs, out_sp, np.int64, WIDE)
        s_y = fit_scale(raw, s_x * float(np.mean(s_w)), halves)
        if i % 7 == 6:  # multipliers above 1: a left shift, saturating
            s_y = s_x * float(np.min(s_w)) / 3.0
        if i % 7 == 3:  # right shifts past 22: the general requantization (not the short form)
            s_y = s_x * float(np.max(s_w)) * 2.0**23
        qy = rand_q(rng, I8, s_y)
        act = rand_act(rng, i % 4, qy)
        attrs = ConvAttrs((kh, kw), strides, pads, dil, group, act)
        want = R.qconv(x, qx, w, qw, b, qy, attrs, out_sp, I8, bounds(act, I8, qy))
        inputs = [p.input(x, qx), p.const(w, qw)] + ([p.const(b, qb)] if b is not None else [])
        p.node("QConv", inputs, attrs, want, qy,
               f"k={kh}x{kw} s={strides} d={dil} p={pads} c={c} m={m} n={n} edge={edge} act={act}")
    return p


def fc_cases(rng, count):
    p = Program("x86_fc")
    for i in range(count):
        rows, k, nn = int(rng.integers(1, 3)), int(rng.choice([1, 3, 15, 16, 17, 40, 100, 640])), \
            int(rng.choice([1, 5, 8, 9, 12, 16, 17, 40, 128]))
        edge, halves = i % 4, i % 3 == 0
        s_x = 2.0**-5 if halves else rng.uniform(0.01, 0.05)
        s_w = 2.0 ** -rng.integers(5, 9, nn) if halves else rng.uniform(0.002, 0.02, nn)
        qx, qw = rand_q(rng, I8, s_x), qp(s_w, [0] * nn, axis=0)
        x = edge_inputs(rng, (rows, k), edge if edge < 3 else int(rng.integers(1, 4)))
        w = edge_weights(rng, (nn, k), edge)
        b = rng.integers(-3000, 3000, nn).astype(np.int32) if i % 2 else None
        s_y = fit_scale(lambda sy: R.qgemm(x, qx, w, qw, b, qp(sy, 0), np.int64, WIDE),
                        s_x * float(np.mean(s_w)), halves)
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


def add_cases(rng, count):
    """Same-shape adds (int8_testlib.qadd_program) on this file's extreme inputs."""
    return qadd_program("x86_add", rng, count, edge_inputs)


def max_pool_ref(x, k, s, pads, out_sp):
    n, c, h, w = x.shape
    y = np.full((n, c) + out_sp, -128, I8)
    for oh in range(out_sp[0]):
        for ow in range(out_sp[1]):
            for kh in range(k[0]):
                ih = oh * s[0] - pads[0] + kh
                for kw in range(k[1]):
                    iw = ow * s[1] - pads[1] + kw
                    if 0 <= ih < h and 0 <= iw < w:
                        y[:, :, oh, ow] = np.maximum(y[:, :, oh, ow], x[:, :, ih, iw])
    return y


def pool_cases(rng, count):
    """int8 max pools (NHWC on x86): channels on and off multiples of 32, pads, strides."""
    p = Program("x86_maxpool")
    for i in range(count):
        c = int(rng.choice([1, 3, 16, 31, 32, 33, 64, 70]))
        k = tuple(int(v) for v in rng.integers(1, 4, 2))
        st = tuple(int(v) for v in rng.integers(1, 3, 2))
        pads = tuple(int(min(v, k[j % 2] - 1)) for j, v in enumerate(rng.integers(0, 2, 4)))
        size = tuple(int(v) + k[j] for j, v in enumerate(rng.integers(0, 7, 2)))
        out_sp = tuple((size[j] + pads[j] + pads[2 + j] - k[j]) // st[j] + 1 for j in range(2))
        q = rand_q(rng, I8, 0.05)
        x = edge_inputs(rng, (int(rng.integers(1, 3)), c) + size, i % 4)
        want = max_pool_ref(x, k, st, pads, out_sp)
        p.node("MaxPool", [p.input(x, q)], PoolAttrs(k, st, pads, (1, 1)), want, q,
               f"c={c} k={k} s={st} p={pads} size={size}")
    return p


def mean_cases(rng, count):
    """Means over axes 1 and 2 (global average pools in NHWC): channels on and off multiples
    of 8, power-of-two scales (halves)."""
    p = Program("x86_mean")
    for i in range(count):
        n, c = int(rng.integers(1, 3)), int(rng.choice([1, 3, 8, 13, 64, 70]))
        h, w = (17, 19) if i % 4 == 0 else tuple(int(v) for v in rng.integers(1, 9, 2))
        s_x = float(rng.uniform(0.01, 0.1))
        s_y = s_x * max(float(rng.uniform(0.3, 2.0)), 2.5 / (h * w))
        if i % 4 == 2:
            h, w = [(2, 4), (4, 4), (4, 8), (8, 8)][i % 16 // 4]
            s_x, s_y = 2.0**-4, 2.0**-3
        qx, qy = rand_q(rng, I8, s_x), rand_q(rng, I8, s_y)
        x = edge_inputs(rng, (n, h, w, c), i % 4)
        want = R.qreduce_mean(x, qx, qy, (1, 2), True, I8)
        p.node("QReduceMean", [p.input(x, qx)], ReduceAttrs((1, 2), True), want, qy,
               f"{(n, h, w, c)}")
    return p


def quantize_cases(rng, count):
    """The float input's quantization: random scales and zero points; values on exact halves
    (power-of-two scales: ties go to even), past the int8 range, +-inf, +-1e30 and NaN (which
    becomes the zero point, as in the portable kernel); lengths on and off multiples of 8."""
    p = Program("x86_quantize")
    for i in range(count):
        scale = 2.0 ** -int(rng.integers(2, 8)) if i % 2 else float(rng.uniform(0.001, 0.2))
        qy = rand_q(rng, I8, scale)
        zp = int(qy.zero_point[0])
        x = (rng.standard_normal(int(rng.integers(1, 40))) * 80 * scale).astype(np.float32)
        halves = ((rng.integers(-140, 140, 8) + 0.5) * scale).astype(np.float32)
        special = np.array([np.inf, -np.inf, 1e30, -1e30, np.nan, 0.0, -0.0], np.float32)
        x = np.concatenate([x, halves, special])
        x = rng.permutation(x).astype(np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            want = quantize(np.nan_to_num(x, nan=0.0), scale, zp)
        want[np.isnan(x)] = zp
        p.node("QuantizeLinear", [p.input(x)], QuantizeAttrs(qy), want, qy, f"n={x.size}")
    return p


CASES = {"conv": lambda rng: conv_cases(rng, 30),
         "depthwise": lambda rng: conv_cases(rng, 24, True),
         "fc": lambda rng: fc_cases(rng, 16), "add": lambda rng: add_cases(rng, 24),
         "maxpool": lambda rng: pool_cases(rng, 16), "mean": lambda rng: mean_cases(rng, 12),
         "quantize": lambda rng: quantize_cases(rng, 10)}
VNNI_KINDS = ("conv", "fc")  # the kernels with a vpdpbusd path
MARKERS = {"conv": "multiplied and pair-summed", "depthwise": "taps in",
           "fc": "vpmaddwd dot products", "add": "8 lanes per step", "maxpool": "vpmaxsb over",
           "mean": "per channel sum(x)", "quantize": "NaN -> zero_point; 8 lanes per step"}


def compare(outs, p: Program, what: str):
    bad = []
    for k, (o, e, label) in enumerate(zip(outs, p.expected, p.labels)):
        o = np.asarray(o).reshape(e.shape)
        if not np.array_equal(o, e):
            d = np.abs(o.astype(np.int64) - e.astype(np.int64))
            bad.append(f"{what} case {k} {label}: {np.count_nonzero(d)} of {e.size} differ, "
                       f"max {d.max()}")
    return bad


@pytest.fixture(scope="module", params=list(CASES))
def program(request):
    kind = request.param
    rng = np.random.default_rng(SEED + 13 + list(CASES).index(kind))
    p = CASES[kind](rng)
    return kind, p, compile_for(p, "x86-avx2"), compile_for(p, "generic")


def test_cases_are_taken_by_the_avx2_kernels(program):
    kind, p, (files, _), _ = program
    code = files["model.c"]
    assert layers_of(code, MARKERS[kind]) == len(p.labels)
    assert "#include <immintrin.h>" in code
    assert "_mm256_madd_epi16" in code or kind in ("add", "maxpool", "mean", "quantize")
    if kind in VNNI_KINDS:  # and the vpdpbusd path, for builds with AVX512-VNNI and VL
        assert "_mm256_dpbusd_epi32" in code
        assert "#if defined(__AVX512VNNI__) && defined(__AVX512VL__)" in code
    if kind == "conv":  # the VNNI row form (x86_qconv_rows.c.j2) and both zmm-pair loops
        assert code.count("VNNI, row form") >= 5
        assert "2 x 16 channels, in zmm registers" in code and "one zmm register each" in code
        assert "the whole input's, flipped once" in code and "flipped per output row" in code
    if kind == "depthwise":  # the VNNI row loop over a padded copy, and over the inside columns
        assert code.count("all: the padded copy's") >= 3
        assert "windows inside the input's columns" in code


@pytest.mark.parametrize("target", X86_TARGETS)
def test_avx2_equals_generic_and_the_model(program, target, tmp_path):
    _, p, (files, graph), (gfiles, ggraph) = program
    build = build_host(files, graph, "model", str(tmp_path / "x86"), sanitize=True, opt="-O1",
                       cflags=get_target(target).host_cflags)
    outs = run_host(build, p.feeds)
    gbuild = build_host(gfiles, ggraph, "model", str(tmp_path / "generic"), sanitize=True,
                        opt="-O1")
    gouts = run_host(gbuild, p.feeds)
    bad = compare(outs, p, target) + compare(gouts, p, "generic")
    assert not bad, "\n".join(bad)
    for o, go in zip(outs, gouts):
        assert np.asarray(o).tobytes() == np.asarray(go).tobytes()


@pytest.mark.parametrize("target", X86_TARGETS)
def test_avx2_at_o3(program, target, tmp_path):
    _, p, (files, graph), _ = program
    build = build_host(files, graph, "model", str(tmp_path), opt="-O3",
                       cflags=get_target(target).host_cflags)
    assert not compare(run_host(build, p.feeds), p, f"{target} -O3")
