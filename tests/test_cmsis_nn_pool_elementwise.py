"""edgecc's CMSIS-NN-compatible runtime (edgecc/runtime_c/cmsis_nn/): pooling, softmax,
elementwise add and mul, softmax's fixed-point exp and reciprocal and the requantization helper
against the numpy model of the documented semantics (edgecc/backends/cmsis/cmsis_reference.py),
bit for bit, through the sanitized C driver of cmsis_testlib.py; the helpers are compared at
full 32-bit precision. The reference itself is cross-checked against edgecc's own NCHW int8
models (ir/quant_ref.py) and the fixed-point softmax against float. Every runtime file must
also compile warning-free on the host and with arm-none-eabi-gcc for Cortex-M4, M7 and M55
(skipped without that compiler), and carry no text of Arm's sources. The convolutions and
fully connected layers are in test_cmsis_nn.py.
"""
import math
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from cmsis_testlib import (ADD, AVGPOOL, CFLAGS, EXP, MAXPOOL, MUL, RECIP, REQUANT, RUNTIME,
                           SOFTMAX, SOURCES, Batch, activation, build_driver, geometry, i8,
                           multipliers, offsets)
from edgecc.backends.cmsis import cmsis_reference as R
from edgecc.ir import quant_ref
from edgecc.ir.quant import quantize_multiplier, requantize


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return build_driver(tmp_path_factory)


@pytest.mark.parametrize("op", [AVGPOOL, MAXPOOL])
def test_pooling(build, op):
    rng, batch = np.random.default_rng(14 + op), Batch(build)
    for i in range(60):
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        h, sh, _, ph, oh = geometry(rng, kh, max_dil=1)
        w, sw, _, pw, ow = geometry(rng, kw, max_dil=1)
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 9))
        x = i8(rng, (n, h, w, c))
        lo, hi = activation(rng, int(rng.integers(-128, 128)))
        fn = R.avgpool_s8 if op == AVGPOOL else R.max_pool_s8
        want = fn(x, kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw), out_hw=(oh, ow),
                  act_min=lo, act_max=hi)
        params = [n, h, w, c, kh, kw, oh, ow, sh, sw, ph, pw, lo, hi]
        batch.add(op, params, x, None, want, f"pool{op}.{i} {params}")
    assert batch.run() == 60


SOFTMAX_SCALES = [1 / 256, 0.01, 0.03, 0.0625, 0.1, 0.25, 0.5, 1.0, 3.0, 8.0, 16.0, 100.0]


def test_softmax_s8(build):
    rng, batch = np.random.default_rng(15), Batch(build)
    for i in range(60):
        scale = SOFTMAX_SCALES[i % len(SOFTMAX_SCALES)] * (1.0 if i < 24 else rng.uniform(0.7, 1.4))
        beta = 1.0 if i % 3 else float(rng.uniform(0.3, 2.0))
        rows, size = int(rng.integers(1, 5)), int(rng.integers(1, 45))
        if i % 10 == 9:                      # long rows near the max: a sum past 2^28
            rows, size = 2, int(rng.integers(520, 1100))
            x = np.clip(127 - rng.integers(0, 3, (rows, size)), -128, 127).astype(np.int64)
        else:
            x = i8(rng, (rows, size))
        mult, shift, diff_min = R.softmax_params(scale, beta)
        want = R.softmax_s8(x, mult, shift, diff_min)
        params = [rows, size, mult, shift, diff_min]
        batch.add(SOFTMAX, params, x, None, want, f"softmax{i} scale {scale} {params}")
    assert batch.run() == 60


def test_elementwise_add_s8(build):
    rng, batch = np.random.default_rng(16), Batch(build)
    for i in range(50):
        size = int(rng.integers(1, 300))
        a, b = i8(rng, size), i8(rng, size)
        sa, sb = 2.0 ** rng.uniform(-8, 0), 2.0 ** rng.uniform(-8, 0)
        sy = (sa + sb) * 2.0 ** rng.uniform(-1, 1) if i % 4 else 2.0 ** round(math.log2(sa + sb))
        (ma, sha), (mb, shb), (my, shy) = quant_ref.add_multipliers(sa, sb, sy)
        off_a, off_y = offsets(rng)
        off_b = int(rng.integers(-127, 129))
        lo, hi = activation(rng, off_y)
        p = dict(input_1_offset=off_a, input_1_mult=ma, input_1_shift=sha, input_2_offset=off_b,
                 input_2_mult=mb, input_2_shift=shb, left_shift=quant_ref.ADD_LEFT_SHIFT,
                 out_offset=off_y, out_mult=my, out_shift=shy, act_min=lo, act_max=hi)
        want = R.elementwise_add_s8(a, b, **p)
        batch.add(ADD, list(p.values()), a, b, want, f"add{i} {p}")
    assert batch.run() == 50


def test_elementwise_mul_s8(build):
    rng, batch = np.random.default_rng(17), Batch(build)
    grid_a, grid_b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128))
    for i in range(40):
        if i < 8:          # every input pair, M0 = 2^30: products land on exact halves
            a, b, m, s = grid_a.ravel(), grid_b.ravel(), 1 << 30, -int(rng.integers(0, 10))
        else:
            size = int(rng.integers(1, 300))
            a, b = i8(rng, size), i8(rng, size)
            m, s = multipliers(rng, 1, 90.0 * 90.0)
            m, s = int(m[0]), int(s[0])
        off_a, off_y = offsets(rng)
        off_b = int(rng.integers(-127, 129))
        lo, hi = activation(rng, off_y)
        p = dict(input_1_offset=off_a, input_2_offset=off_b, out_offset=off_y, out_mult=m,
                 out_shift=s, act_min=lo, act_max=hi)
        want = R.elementwise_mul_s8(a, b, **p)
        batch.add(MUL, list(p.values()), a, b, want, f"mul{i} {p}")
    assert batch.run() == 40


def test_softmax_fixed_point_helpers(build):
    """exp and 1 / (1 + x) compared at full 32-bit precision (softmax's 8-bit outputs hide
    most errors in them)."""
    rng, batch = np.random.default_rng(18), Batch(build)
    a = np.concatenate([np.arange(-(1 << 28), 1, 811), rng.integers(-2**31, 1, 100000),
                        [-2**31, -2**31 + 1, -(1 << 26), -(1 << 24), -(1 << 24) - 1, -1, 0]])
    batch.add(EXP, [], np.zeros(0, np.int64), None, R.exp_on_negative_values(a), "exp", bias=a)
    t = np.concatenate([np.arange(0, 2**31, 6151), rng.integers(0, 2**31, 100000),
                        [0, 1, 2**30, 2**31 - 2, 2**31 - 1]])
    batch.add(RECIP, [], np.zeros(0, np.int64), None, R.one_over_one_plus_x(t), "1/(1+x)", bias=t)
    assert batch.run() == 2


def test_requantize_helper(build):
    """edgecc_nn_requantize (SRDHM written as one rounded 64-bit shift) against the numpy
    model on random and extreme accumulators, multipliers and shifts, exact halves included."""
    rng, batch = np.random.default_rng(23), Batch(build)
    size = 60000
    acc = np.concatenate([rng.integers(-2**31, 2**31, size // 2),
                          rng.integers(-5000, 5000, size // 2)])
    m = np.where(rng.random(size) < 0.5, rng.integers(1 << 30, 2**31, size),
                 rng.integers(-2**31, 2**31, size))
    m = np.where(rng.random(size) < 0.2, 1 << 30, m)                   # exact halves
    shift = rng.integers(-31, 32, size)
    edge_acc = [-2**31, -2**31 + 1, -1, 0, 1, 2**31 - 1]
    edge_m = [-2**31, -2**31 + 1, -1, 0, 1, 1 << 30, 2**31 - 1]
    ea, em, es = (g.ravel() for g in np.meshgrid(edge_acc, edge_m, [-31, -30, -1, 0, 1, 30, 31]))
    acc, m, shift = np.concatenate([acc, ea]), np.concatenate([m, em]), np.concatenate([shift, es])
    want = requantize(acc, m, shift)
    batch.add(REQUANT, [], np.zeros(0, np.int64), None, want, "requantize", bias=acc, mult=m,
              shift=shift)
    assert batch.run() == 1


# -- the reference against edgecc's NCHW int8 models and against float ------------------------

def q(scale, zp):
    return SimpleNamespace(scale=(scale,), zero_point=(zp,))


def test_reference_matches_edgecc_int8_models():
    rng = np.random.default_rng(21)
    for _ in range(20):
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        h, sh, dh, ph, oh = geometry(rng, kh)
        w, sw, dw, pw, ow = geometry(rng, kw)
        groups, cg, mg = int(rng.choice([1, 2])), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        x, filt = i8(rng, (2, h, w, cg * groups)), i8(rng, (mg * groups, kh, kw, cg))
        bias = rng.integers(-3000, 3000, mg * groups)
        zx, zy = int(rng.integers(-100, 100)), int(rng.integers(-100, 100))
        sx, sy, sw_ = 0.02, 2.0 ** rng.uniform(0, 4), 2.0 ** rng.uniform(-9, -6, mg * groups)
        pe_h = (oh - 1) * sh + (kh - 1) * dh + 1 - h - ph
        pe_w = (ow - 1) * sw + (kw - 1) * dw + 1 - w - pw
        attrs = SimpleNamespace(kernel=(kh, kw), strides=(sh, sw), dilations=(dh, dw),
                                pads=(ph, pw, max(pe_h, 0), max(pe_w, 0)), group=groups)
        nchw = quant_ref.qconv(x.transpose(0, 3, 1, 2).astype(np.int8), q(sx, zx),
                               filt.transpose(0, 3, 1, 2), SimpleNamespace(scale=tuple(sw_)),
                               bias, q(sy, zy), attrs, (oh, ow), np.int8)
        pairs = [quantize_multiplier(sx * s / sy) for s in sw_]
        mine = R.convolve_s8(x, filt, bias, input_offset=-zx, output_offset=zy,
                             multipliers=[p[0] for p in pairs], shifts=[p[1] for p in pairs],
                             stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), out_hw=(oh, ow))
        assert np.array_equal(mine, nchw.transpose(0, 2, 3, 1))
        a, b = i8(rng, 100).astype(np.int8), i8(rng, 100).astype(np.int8)
        qa, qb, qy = q(0.05, int(rng.integers(-50, 50))), q(0.02, 3), q(0.07, -5)
        (ma, sa), (mb, sb), (my, shy) = quant_ref.add_multipliers(0.05, 0.02, 0.07)
        added = R.elementwise_add_s8(
            a, b, input_1_offset=-qa.zero_point[0], input_1_mult=ma, input_1_shift=sa,
            input_2_offset=-3, input_2_mult=mb, input_2_shift=sb,
            left_shift=quant_ref.ADD_LEFT_SHIFT, out_offset=-5, out_mult=my, out_shift=shy)
        assert np.array_equal(added, quant_ref.qadd(a, qa, b, qb, qy, np.int8))
        mm, ms = quant_ref.product_multiplier(0.05, 0.02, 0.07)
        mul = R.elementwise_mul_s8(a, b, input_1_offset=-qa.zero_point[0], input_2_offset=-3,
                                   out_offset=-5, out_mult=mm, out_shift=ms)
        assert np.array_equal(mul, quant_ref.qmul(a, qa, b, qb, qy, np.int8))


def test_softmax_fixed_point_against_float():
    a = np.arange(-(31 << 26), 1, 9973, dtype=np.int64)            # Q5.26 over [-31, 0]
    got = R.exp_on_negative_values(a) / 2.0**31
    assert np.max(np.abs(got - np.exp(a / 2.0**26))) < 3e-7     # degree-4 Taylor: (1/8)^5/5!
    t = np.arange(0, 2**31, 65537, dtype=np.int64)
    got = R.one_over_one_plus_x(t) / 2.0**31
    assert np.max(np.abs(got - 1 / (1 + t / 2.0**31))) < 1e-8     # a few LSB of Q0.31
    rng = np.random.default_rng(22)
    for scale in (0.01, 0.05, 0.1, 0.3, 1.0):
        x = rng.integers(-128, 128, (50, 10))
        mult, shift, diff_min = R.softmax_params(scale)
        got = R.softmax_s8(x, mult, shift, diff_min).astype(np.float64)
        e = np.exp(scale * (x - x.max(axis=1, keepdims=True)))
        want = e / e.sum(axis=1, keepdims=True) * 256 - 128
        assert np.max(np.abs(got - want)) <= 1.0, scale


def test_softmax_params():
    assert R.softmax_params(1 / 256) == (1 << 30, 19, -31 * 2**26 // 2**19)   # 2^-8 * 2^26
    mult, shift, diff_min = R.softmax_params(100.0)                 # capped at 2^31 - 1
    assert (mult, shift, diff_min) == (2**31 - 1, 31, 0)
    m, s, d = R.softmax_params(0.1, beta=2.0)
    assert 2**30 <= m < 2**31 and math.isclose(m * 2.0**(s - 31), 0.2 * 2**26, rel_tol=1e-9)
    assert d == -math.floor(31 * 2**26 / 2**s)


# -- the sources themselves ---------------------------------------------------------------

ARM_TARGETS = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"],
    "cortex-m55": ["-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"],
}


@pytest.mark.parametrize("target", sorted(ARM_TARGETS))
def test_compiles_for_cortex_m(target, tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed")
    res = subprocess.run(["arm-none-eabi-gcc", *ARM_TARGETS[target], *CFLAGS, "-O2", "-c",
                          *map(str, SOURCES)], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert len(list(tmp_path.glob("*.o"))) == len(SOURCES)


def test_host_compile_is_warning_free(tmp_path):
    for opt in ("-O0", "-O2"):
        res = subprocess.run(["gcc", *CFLAGS, opt, "-c", *map(str, SOURCES)], cwd=tmp_path,
                             capture_output=True, text=True)
        assert res.returncode == 0 and not res.stderr, res.stderr


def test_written_independently():
    """No text of Arm's sources: no Arm copyright or licence header in the runtime."""
    for path in RUNTIME.iterdir():
        text = path.read_text()
        for needle in ("Arm Limited", "SPDX-", "Copyright", "Licensed under"):
            assert needle not in text, (path.name, needle)
