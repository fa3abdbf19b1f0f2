"""Bit-exact tests of the int8 QConv, QGemm, QLut, QuantizeLinear and DequantizeLinear kernels
against the numpy model of their integer arithmetic, and unit tests of edgecc/ir/quant.py.

Per kernel, ~12 random cases (fixed seed) are built as one IR graph (one node per case, each
with its own inputs and output), compiled to one C program with sanitizers and run once; every
output must equal edgecc/ir/quant_ref.py's result exactly (np.array_equal). Cases cover odd
shapes, strides, paddings, dilations, groups/depthwise, int8 and uint8, fused clamps, and
scales that are powers of two so that requantization lands on exact halves.
Also: exact-half unit tests of edgecc/ir/quant.py and of the C helpers.
The arithmetic kernels (QAdd, QMul, QAveragePool, ...) are in test_int8_arith_kernels.py; the
shared harness is int8_testlib.py.
"""
import math
import subprocess

import numpy as np
from int8_testlib import (
    I8,
    SEED,
    U8,
    WIDE,
    Program,
    bounds,
    dtypes,
    fit_scale,
    near,
    qp,
    rand_act,
    rand_int,
    rand_q,
    spatial_sizes,
)

from edgecc.backends.codegen import c_literal, make_env
from edgecc.ir.ops import op_info
from edgecc.ir import Activation, DType
from edgecc.ir import quant_ref as R
from edgecc.ir.ops.conv import ConvAttrs
from edgecc.ir.ops.gemm import GemmAttrs
from edgecc.ir.ops.quantize_linear import QuantAttrs, QuantizeAttrs
from edgecc.ir.quant import (
    INT32_MAX,
    INT32_MIN,
    dequantize,
    quant_range,
    quantize,
    quantize_multiplier,
    rdbp,
    requantize,
    srdhm,
)
from edgecc.passes.fold_qdq import LutAttrs
from edgecc.targets.registry import get_target

GENERIC = get_target("generic").backend_chain()


# -- edgecc.ir.quant on exact halves ------------------------------------------------------------

def test_srdhm_exact_halves_and_saturation():
    half = 2**30  # b = 2^30 is 0.5 in Q31: srdhm(a, 2^30) = a / 2
    assert srdhm(1, half) == 1 and srdhm(3, half) == 2        # +0.5, +1.5 -> up
    assert srdhm(-1, half) == 0 and srdhm(-3, half) == -1     # -0.5, -1.5 -> toward +inf
    assert srdhm(-5, half) == -2 and srdhm(5, half) == 3
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX           # the one overflow saturates
    assert srdhm(INT32_MIN, INT32_MAX) == -2147483647
    assert srdhm(INT32_MAX, INT32_MAX) == 2147483646
    assert srdhm(2**30, 2**30) == 2**29
    assert srdhm(7, 3 * 2**29) == 5                          # 7 * 0.75 = 5.25


def test_rdbp_halves_away_from_zero():
    cases = [(5, 1, 3), (-5, 1, -3), (3, 1, 2), (-3, 1, -2), (1, 1, 1), (-1, 1, -1),
             (6, 2, 2), (-6, 2, -2), (2, 2, 1), (-2, 2, -1), (7, 2, 2), (-7, 2, -2),
             (5, 2, 1), (-5, 2, -1), (9, 0, 9), (-9, 0, -9), (INT32_MIN, 31, -1),
             (INT32_MAX, 31, 1), (2**30, 31, 1), (-(2**30), 31, -1), (2**30 - 1, 31, 0)]
    for x, e, want in cases:
        assert rdbp(x, e) == want, (x, e)


def test_requantize_double_rounding():
    m_half = 2**30
    assert requantize(5, m_half, -1) == 2       # 1.25: 2.5 -> 3 (SRDHM), 1.5 -> 2 (RDBP)
    assert requantize(-5, m_half, -1) == -1     # -1.25: -2.5 -> -2, -1 exact
    assert requantize(3, m_half, -1) == 1       # 0.75: 1.5 -> 2, 1 exact
    assert requantize(-3, m_half, -1) == -1     # -0.75: -1.5 -> -1, -0.5 -> -1
    assert requantize(-2, m_half, -1) == -1     # -0.5: exact -1, -0.5 -> -1 (away from zero)
    assert requantize(7, m_half, 1) == 7        # x1: shift 1, 0.5
    assert requantize(2**30, m_half, 2) == 2**30           # 2^32 saturates to INT32_MAX first
    assert requantize(-(2**30), m_half, 2) == -(2**30)     # and to INT32_MIN
    np.testing.assert_array_equal(requantize([1, -1, 2, -2, 3, -3], m_half, -1),
                                  [1, 0, 1, -1, 1, -1])


def test_quantize_multiplier_rounding():
    assert quantize_multiplier(0.5 + 2**-32) == (2**30 + 1, 0)  # the half rounds up (std::round)
    assert quantize_multiplier(0.5 + 5 * 2**-32) == (2**30 + 3, 0)  # 2.5 -> 3 (not even 2)
    assert quantize_multiplier(0.5 + 3 * 2**-33) == (2**30 + 1, 0)  # 0.75 -> 1
    assert quantize_multiplier(1.0) == (2**30, 1)
    assert quantize_multiplier(0.75) == (3 * 2**29, 0)
    assert quantize_multiplier(1 - 2**-40) == (2**30, 1)    # rounds to 2^31: renormalized
    assert quantize_multiplier(2**-32) == (2**30, -31)
    assert quantize_multiplier(2**-33) == (0, 0)             # flushed to zero, as TFLite
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0**40) == (2**30, 31)       # capped: same results, no overflow
    assert requantize(1, *quantize_multiplier(2.0**40)) == 2**30


def test_activation_bounds_saturate():
    q = qp(0.01, 10)
    assert bounds(Activation("Relu"), I8, q) == (10, 127)
    assert bounds(Activation("Clip", 0.0, 6.0), I8, q) == (10, 127)        # 610 saturates
    assert bounds(Activation("Clip", -math.inf, -5.0), I8, q) == (-128, -128)
    assert bounds(Activation("Clip", 0.5, 0.2), U8, qp(0.01, 0)) == (20, 20)  # min > max: max
    assert bounds(Activation("Clip", -0.015, 0.025), I8, q) == (8, 12)      # halves to even


def test_c_helpers_match_numpy(tmp_path):
    """edgecc_srdhm / edgecc_rdbp / edgecc_requantize (int8_helpers.c.j2) on edge values."""
    rng = np.random.default_rng(SEED)
    edge = [0, 1, -1, 2, -2, 3, -3, 5, -5, 2**30, -(2**30), INT32_MAX, INT32_MIN]
    a = np.array(edge * len(edge) + list(rng.integers(INT32_MIN, INT32_MAX, 200)), np.int64)
    b = np.array([e for e in edge for _ in edge] + list(rng.integers(INT32_MIN, INT32_MAX, 200)),
                 np.int64)
    e = np.array([k % 32 for k in range(a.size)], np.int64)
    m = np.abs(b) % 2**31
    m = np.where(m < 2**30, m + 2**30, m)
    s = np.array([(k % 45) - 31 for k in range(a.size)], np.int64)
    s = np.minimum(s, 31)
    lit = lambda v: ", ".join(c_literal(int(x), DType.INT32) for x in v)  # noqa: E731
    src = "\n".join([
        "#include <stdint.h>", "#include <stdio.h>",
        make_env(backends=GENERIC).get_template("generic/int8_helpers.c.j2").render(),
        f"static const int32_t A[] = {{{lit(a)}}}, B[] = {{{lit(b)}}}, E[] = {{{lit(e)}}};",
        f"static const int32_t M[] = {{{lit(m)}}}, S[] = {{{lit(s)}}};",
        "int main(void) {", "    int32_t i;",
        f"    for (i = 0; i < {a.size}; ++i)",
        '        printf("%ld %ld %ld\\n", (long)edgecc_srdhm(A[i], B[i]), '
        "(long)edgecc_rdbp(A[i], E[i]), (long)edgecc_requantize(A[i], M[i], S[i]));",
        "    return 0;", "}"])
    c_file, exe = tmp_path / "h.c", tmp_path / "h"
    c_file.write_text(src)
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-o", str(exe),
                    str(c_file)], check=True, capture_output=True)
    out = np.array([[int(v) for v in line.split()] for line in
                    subprocess.run([str(exe)], check=True, capture_output=True,
                                   text=True).stdout.splitlines()])
    np.testing.assert_array_equal(out[:, 0], srdhm(a, b))
    np.testing.assert_array_equal(out[:, 1], rdbp(a, e))
    np.testing.assert_array_equal(out[:, 2], requantize(a, m, s))


# -- QConv, QGemm, QLut, QuantizeLinear, DequantizeLinear --------------------------------------

def test_qconv(tmp_path):
    rng = np.random.default_rng(SEED)
    p = Program("qconv")
    for i in range(14):
        nsp = (1, 2, 2, 2, 3)[i % 5]
        groups_kind = i % 4                        # plain, depthwise, grouped, plain
        c = int(rng.integers(1, 4)) * (2 * int(rng.integers(0, 3)) + 1)   # odd-ish counts
        g = {0: 1, 1: c, 2: 3 if c % 3 == 0 else (c if c < 3 else 1), 3: 1}[groups_kind]
        if groups_kind == 2 and g == 1:
            c, g = 6, 3
        m = g * int(rng.integers(1, 4))
        kernel = tuple(int(rng.integers(1, 4 if nsp < 3 else 3)) for _ in range(nsp))
        strides = tuple(int(rng.integers(1, 4)) for _ in range(nsp))
        dil = tuple(int(rng.integers(1, 3)) for _ in range(nsp))
        pads = tuple(int(rng.integers(0, 3)) for _ in range(2 * nsp))
        size, out_sp = spatial_sizes(rng, 10 if nsp < 3 else 5, kernel, strides, dil, pads)
        n = int(rng.integers(1, 3))
        tx, ty = dtypes(rng)
        halves, tie = i % 3 == 0, i % 7 == 6
        s_x = 2.0**-4 if halves or tie else rng.uniform(0.01, 0.05)
        s_w = (2.0 ** -rng.integers(5, 9, m) if halves else rng.uniform(0.002, 0.02, m))
        s_w = np.full(m, 2.0**-5) if tie else s_w
        qx, qw = rand_q(rng, tx, s_x), qp(s_w, [0] * m, axis=0)
        if tie:  # multiplier 0.25 on small accumulators: SRDHM ties, then RDBP ties
            x = near(rng, tx, qx, (n, c) + size, 3)
            w = rng.integers(-3, 4, size=(m, c // g) + kernel).astype(I8)
        else:
            x = rand_int(rng, tx, (n, c) + size)
            w = rng.integers(-127, 128, size=(m, c // g) + kernel).astype(I8)
        b = rng.integers(-3000, 3000, m).astype(np.int32) if i % 4 != 3 and not tie else None
        qb = qp(s_x * np.asarray(qw.scale), [0] * m, axis=0)
        attrs = ConvAttrs(kernel, strides, pads, dil, g, None)
        s_y = 2.0**-7 if tie else fit_scale(
            lambda sy: R.qconv(x, qx, w, qw, b, qp(sy, 0), attrs, out_sp, np.int64, WIDE),
            s_x * float(np.mean(s_w)), halves)
        qy = rand_q(rng, ty, s_y)
        act = None if tie else rand_act(rng, i % 4, qy)  # a clamp would hide the ties
        attrs = ConvAttrs(kernel, strides, pads, dil, g, act)
        want = R.qconv(x, qx, w, qw, b, qy, attrs, out_sp, ty, bounds(act, ty, qy))
        inputs = [p.input(x, qx), p.const(w, qw)] + ([p.const(b, qb)] if b is not None else [])
        p.node("QConv", inputs, attrs, want, qy, f"{nsp}-D g={g} k={kernel} s={strides} "
               f"d={dil} p={pads} {tx.__name__}->{ty.__name__} act={act}")
    assert p.check(tmp_path) == 14


def test_qgemm(tmp_path):
    rng = np.random.default_rng(SEED + 1)
    p = Program("qgemm")
    for i in range(12):
        mm, k, nn = int(rng.integers(1, 5)), int(rng.integers(1, 80)), int(rng.integers(1, 20))
        tx, ty = dtypes(rng)
        halves, tie = i % 3 == 0, i % 7 == 6
        s_x = 2.0**-5 if halves or tie else rng.uniform(0.01, 0.05)
        s_w = 2.0 ** -rng.integers(5, 9, nn) if halves else rng.uniform(0.002, 0.02, nn)
        if i % 5 == 4 or tie:
            s_w = np.full(nn, 2.0**-4 if tie else s_w[0])  # per-tensor weights
        qx, qw = rand_q(rng, tx, s_x), qp(s_w, [0] * nn, axis=0)
        if tie:  # multiplier 0.25: SRDHM ties, then RDBP ties
            x, w = near(rng, tx, qx, (mm, k), 3), rng.integers(-3, 4, (nn, k)).astype(I8)
        else:
            x, w = rand_int(rng, tx, (mm, k)), rng.integers(-127, 128, (nn, k)).astype(I8)
        b = rng.integers(-3000, 3000, nn).astype(np.int32) if i % 2 and not tie else None
        s_y = 2.0**-7 if tie else fit_scale(
            lambda sy: R.qgemm(x, qx, w, qw, b, qp(sy, 0), np.int64, WIDE),
            s_x * float(np.mean(s_w)), halves)
        qy = rand_q(rng, ty, s_y)
        act = None if tie else rand_act(rng, i % 4, qy)
        want = R.qgemm(x, qx, w, qw, b, qy, ty, bounds(act, ty, qy))
        inputs = [p.input(x, qx), p.const(w, qw)]
        if b is not None:
            inputs.append(p.const(b, qp(s_x * np.asarray(qw.scale), [0] * nn, axis=0)))
        p.node("QGemm", inputs, GemmAttrs(trans_b=True, activation=act), want, qy,
               f"{mm}x{k}x{nn} {tx.__name__}->{ty.__name__} act={act}")
    assert p.check(tmp_path) == 12


def test_qlut(tmp_path):
    rng = np.random.default_rng(SEED + 2)
    p = Program("qlut")
    kinds = [("Requantize", 0, 0), ("Relu", 0, 0), ("Sigmoid", 0, 0), ("Tanh", 0, 0),
             ("LeakyRelu", 0.1, 0), ("HardSwish", 0, 0), ("Clip", -1.0, 2.0),
             ("Requantize", 0, 0), ("HardSigmoid", 0.2, 0.5), ("Exp", 0, 0)]
    for i, (kind, alpha, beta) in enumerate(kinds):
        tx, ty = dtypes(rng)
        lo, hi = quant_range(tx)
        x = np.concatenate([np.arange(lo, hi + 1), rand_int(rng, tx, 37)]).astype(tx)
        x = x.reshape(1, -1, 1)
        s_x = 2.0**-4 if i == 7 else rng.uniform(0.01, 0.06)
        s_y = 2.0**-3 if i == 7 else rng.uniform(0.01, 0.06)   # i == 7: every other code a half
        qx, qy = rand_q(rng, tx, s_x), rand_q(rng, ty, s_y)
        f = (lambda v, *_: v) if kind == "Requantize" else op_info(kind).pointwise
        fn = lambda v, f=f, a=alpha, b=beta: f(v, a, b, "none")  # noqa: E731
        want = R.qlut(x, qx, qy, fn, ty)
        p.node("QLut", [p.input(x, qx)], LutAttrs(kind, alpha, beta), want, qy,
               f"{kind} {tx.__name__}->{ty.__name__}")
    assert p.check(tmp_path) == len(kinds)


def test_quantize_dequantize(tmp_path):
    rng = np.random.default_rng(SEED + 3)
    p = Program("qdq")
    for i in range(12):
        dtype = (I8, U8)[i % 2]
        shape = tuple(int(d) for d in rng.integers(1, 6, int(rng.integers(2, 5))))
        per_axis = i % 3 == 2 and len(shape) > 1
        lo, hi = quant_range(dtype)
        if per_axis:
            ch = shape[1]
            scale = np.float32(2.0 ** -rng.integers(2, 6, ch))
            zp = rng.integers(lo, hi + 1, ch) if dtype == U8 else rng.integers(-20, 20, ch)
            q = qp(scale, zp, axis=1)
            s_b = scale.reshape((1, ch) + (1,) * (len(shape) - 2))
            z_b = np.asarray(zp).reshape(s_b.shape)
        else:
            scale = np.float32(2.0**-3 if i % 4 == 0 else rng.uniform(0.01, 0.2))
            q = rand_q(rng, dtype, scale)
            s_b, z_b = np.float32(q.scale[0]), q.zero_point[0]
        # exact halves (round half to even), saturation, infinities, random values
        x = ((rng.integers(-300, 300, shape) + 0.5) * s_b).astype(np.float32)
        flat = x.reshape(-1)
        flat[::3] = (rng.standard_normal(flat[::3].shape) * 100 * float(np.max(s_b)))
        flat[:2] = [np.inf, -np.inf][:flat[:2].size]
        p.node("QuantizeLinear", [p.input(x)], QuantizeAttrs(q, dtype == U8),
               quantize(x, s_b, z_b, dtype), q, f"Q {dtype.__name__} axis={q.axis}")
        xi = rand_int(rng, dtype, shape)
        p.node("DequantizeLinear", [p.input(xi, q)], QuantAttrs(q), dequantize(xi, s_b, z_b),
               None, f"DQ {dtype.__name__} axis={q.axis}")
    assert p.check(tmp_path) == 24
