"""Bit-exact tests of every int8 kernel against the numpy model of its integer arithmetic.

Per kernel, ~12 random cases (fixed seed) are built as one IR graph (one node per case, each
with its own inputs and output), compiled to one C program with sanitizers and run once; every
output must equal edgecc/ir/quant_ref.py's result exactly (np.array_equal). Cases cover odd
shapes, strides, paddings, dilations, groups/depthwise, broadcasting, int8 and uint8, fused
clamps, and scales that are powers of two so that requantization lands on exact halves.
Also: exact-half unit tests of edgecc/ir/quant.py and of the C helpers, and fold-qdq tests of
the arithmetic rules (QDQ ONNX -> integer ops, bit-exact and within 1 LSB of onnxruntime).
"""
import math
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.backends.codegen import c_literal, generate, make_env
from edgecc.backends.generic.int8 import UNARY, activation_bounds
from edgecc.compiler.lowering.conv import ConvAttrs
from edgecc.compiler.lowering.gemm import GemmAttrs, MatMulAttrs
from edgecc.compiler.lowering.int8_arith_ops import QBinaryAttrs
from edgecc.compiler.lowering.pool import PoolAttrs
from edgecc.compiler.lowering.quantize_linear import QuantAttrs, QuantizeAttrs
from edgecc.compiler.lowering.reduce import ReduceAttrs
from edgecc.compiler.lowering.softmax import SoftmaxAttrs
from edgecc.ir import Activation, DType, Graph, Node, QuantParams, TensorType
from edgecc.ir import quant_ref as R
from edgecc.ir.quant import (INT32_MAX, INT32_MIN, dequantize, quant_range, quantize,
                             quantize_multiplier, rdbp, requantize, srdhm)
from edgecc.passes.fold_qdq import LutAttrs
from edgecc.passes.memory_plan import plan_memory
from edgecc.runner import build_host, run_host

SEED = 1234
I8, U8 = np.int8, np.uint8


# -- harness ---------------------------------------------------------------------------------

class Program:
    """Many independent single-node cases in one graph; check() builds, runs and compares."""

    def __init__(self, name):
        self.g = Graph(name, [], [], [], {}, {})
        self.feeds, self.expected, self.labels = [], [], []

    def input(self, value, quant=None):
        name = f"in{len(self.g.inputs)}"
        self.g.inputs.append(name)
        self.g.types[name] = TensorType(DType.from_numpy(value.dtype), value.shape, quant)
        self.feeds.append(value)
        return name

    def const(self, value, quant=None):
        name = self.g.add_constant(f"c{len(self.g.constants)}", value)
        self.g.types[name] = TensorType(DType.from_numpy(value.dtype), value.shape, quant)
        return name

    def node(self, op, inputs, attrs, expected, quant=None, label=""):
        out = f"out{len(self.g.outputs)}"
        self.g.types[out] = TensorType(DType.from_numpy(expected.dtype), expected.shape, quant)
        self.g.nodes.append(Node(op, tuple(inputs), (out,), attrs, name=f"case{len(self.labels)}"))
        self.g.outputs.append(out)
        self.expected.append(expected)
        self.labels.append(label)

    def check(self, tmp_path):
        self.g.verify()
        files = generate(self.g, plan_memory(self.g))
        build = build_host(files, self.g, "model", str(tmp_path), sanitize=True, opt="-O1")
        outs = run_host(build, self.feeds)
        bad = []
        for k, (o, e, label) in enumerate(zip(outs, self.expected, self.labels)):
            if not np.array_equal(o, e):
                d = np.abs(o.astype(np.float64) - e.astype(np.float64))
                bad.append(f"case {k} {label}: {np.count_nonzero(d)} of {e.size} differ, "
                           f"max {d.max()}")
        assert not bad, "\n".join(bad)
        return len(self.labels)


def qp(scale, zp, axis=None):
    if axis is None:
        return QuantParams((float(np.float32(scale)),), (int(zp),))
    return QuantParams(tuple(float(np.float32(s)) for s in scale), tuple(int(z) for z in zp),
                       axis)


def rand_q(rng, dtype, scale):
    lo, hi = quant_range(dtype)
    return qp(scale, rng.integers(lo + 16, hi - 15) if dtype == I8 else rng.integers(0, 200))


def near_q(rng, dtype, scale):
    """Output params of a mean: zero point near the middle of the range, so few saturate."""
    return qp(scale, rng.integers(-20, 21) + (0 if dtype == I8 else 128))


def rand_int(rng, dtype, shape):
    lo, hi = quant_range(dtype)
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


def pow2(x):
    return 2.0 ** round(math.log2(x))


WIDE = (-2**62, 2**62)


def fit_scale(raw_at, s0, halves, spread=40.0):
    """An output scale that spreads the outputs over ~``spread`` LSB (std), so few saturate;
    a power of two when ``halves`` (then requantization often lands on exact halves).
    ``raw_at(s)`` is the reference's unclamped int64 output at output scale s (zero point 0)."""
    s = s0 * max(float(np.std(raw_at(s0))), 1.0) / spread
    return pow2(s) if halves else s


def near(rng, dtype, q, shape, r):
    """Values within r of q's zero point: small products, so multipliers near 1 still fit."""
    lo, hi = quant_range(dtype)
    z = q.zero_point[0]
    return np.clip(z + rng.integers(-r, r + 1, shape), lo, hi).astype(dtype)


def rand_act(rng, kind, q):
    """None, Relu, Clip(0, max), Clip(-inf, max) (a missing min), max inside q's range."""
    if kind == 0:
        return None
    if kind == 1:
        return Activation("Relu")
    if kind == 2:
        return Activation("Clip", 0.0, float(q.scale[0] * rng.uniform(20, 120)))
    return Activation("Clip", -math.inf, float(q.scale[0] * rng.uniform(-60, 60)))


def bounds(act, dtype, quant):
    return activation_bounds(act, TensorType(DType.from_numpy(dtype), (1,), quant))


def dtypes(rng):
    return (I8, U8)[rng.integers(2)], (I8, U8)[rng.integers(2)]


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
        make_env().get_template("int8_helpers.c.j2").render(),
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

def _out_size(size, k, s, d, pb, pe, ceil=False):
    eff = (k - 1) * d + 1
    span = size + pb + pe - eff
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + pb:  # the last window must start inside
        out -= 1
    return out


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
        size = []
        for j in range(nsp):
            s = int(rng.integers(2, 10 if nsp < 3 else 5))
            while _out_size(s, kernel[j], strides[j], dil[j], pads[j], pads[nsp + j]) < 1:
                s += 1
            size.append(s)
        out_sp = tuple(_out_size(size[j], kernel[j], strides[j], dil[j], pads[j], pads[nsp + j])
                       for j in range(nsp))
        n = int(rng.integers(1, 3))
        tx, ty = dtypes(rng)
        halves, tie = i % 3 == 0, i % 7 == 6
        s_x = 2.0**-4 if halves or tie else rng.uniform(0.01, 0.05)
        s_w = (2.0 ** -rng.integers(5, 9, m) if halves else rng.uniform(0.002, 0.02, m))
        s_w = np.full(m, 2.0**-5) if tie else s_w
        qx, qw = rand_q(rng, tx, s_x), qp(s_w, [0] * m, axis=0)
        if tie:  # multiplier 0.25 on small accumulators: SRDHM ties, then RDBP ties
            x = near(rng, tx, qx, (n, c) + tuple(size), 3)
            w = rng.integers(-3, 4, size=(m, c // g) + kernel).astype(I8)
        else:
            x = rand_int(rng, tx, (n, c) + tuple(size))
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
        fn = lambda v, k=kind, a=alpha, b=beta: UNARY[k](v, a, b, "none")  # noqa: E731
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


# -- QAdd, QMul, QAveragePool, QReduceMean, QSoftmax, QMatMul ----------------------------------

def _broadcast_pair(rng):
    rank = int(rng.integers(1, 5))
    base = [int(d) for d in rng.integers(1, 6, rank)]
    a = [1 if rng.random() < 0.3 else d for d in base]
    b = [1 if rng.random() < 0.3 else d for d in base]
    b = b[int(rng.integers(0, rank)):] if rng.random() < 0.3 else b  # fewer leading dims
    return tuple(a), tuple(b)


@pytest.mark.parametrize("op", ["QAdd", "QMul"])
def test_qadd_qmul(tmp_path, op):
    rng = np.random.default_rng(SEED + (4 if op == "QAdd" else 5))
    p = Program(op.lower())
    for i in range(14):
        sa, sb = _broadcast_pair(rng)
        if i == 12:
            sb = ()  # a scalar operand
        ta, tb = dtypes(rng)
        ty = (I8, U8)[i % 2]
        halves = i % 3 == 0
        if halves:  # Add: output multiplier 2^-20 (or 2^-21): (a' + b') / 2 lands on halves
            s_a = s_b = 2.0**-5
            s_y = 2.0 ** -int(rng.integers(3, 5)) if op == "QAdd" else 2.0**-9
        else:
            s_a, s_b = rng.uniform(0.005, 0.1, 2)
            s_y = (s_a + s_b) * rng.uniform(0.6, 1.5) if op == "QAdd" else \
                s_a * s_b * rng.uniform(40, 150)
        qa, qb, qy = rand_q(rng, ta, s_a), rand_q(rng, tb, s_b), rand_q(rng, ty, s_y)
        if halves and op == "QMul":  # multiplier 0.5 at shift 0: SRDHM's own tie rule
            a, b = near(rng, ta, qa, sa, 15), near(rng, tb, qb, sb, 15)
        else:
            a, b = rand_int(rng, ta, sa), rand_int(rng, tb, sb)
        act = rand_act(rng, i % 4, qy)
        ref = R.qadd if op == "QAdd" else R.qmul
        want = ref(a, qa, b, qb, qy, ty, bounds(act, ty, qy))
        b_name = p.const(b, qb) if i == 13 else p.input(b, qb)   # a constant operand
        p.node(op, [p.input(a, qa), b_name], QBinaryAttrs(act), want, qy,
               f"{sa}x{sb} {ta.__name__},{tb.__name__}->{ty.__name__} act={act}")
    assert p.check(tmp_path) == 14


def test_qaverage_pool(tmp_path):
    rng = np.random.default_rng(SEED + 6)
    p = Program("qavgpool")
    for i in range(16):
        nsp = (1, 2, 2, 3)[i % 4]
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 6))
        if i in (14, 15):  # GlobalAveragePool: a full kernel, no padding
            size = tuple(int(d) for d in rng.integers(1, 9, nsp))
            attrs = PoolAttrs(size, (1,) * nsp, (0,) * (2 * nsp), (1,) * nsp)
            out_sp = (1,) * nsp
        else:
            kernel = tuple(int(rng.integers(1, 4)) for _ in range(nsp))
            strides = tuple(int(rng.integers(1, 4)) for _ in range(nsp))
            dil = tuple(int(rng.integers(1, 3)) if i % 3 == 1 else 1 for _ in range(nsp))
            pads = tuple(int(rng.integers(0, k)) for k in kernel) + \
                tuple(int(rng.integers(0, k)) for k in kernel)
            ceil = i % 2 == 1
            if i == 0:  # count 2, equal scales: multiplier 0.5 at shift 0 (SRDHM ties)
                kernel, strides, dil, pads = (2,), (1,), (1,), (0, 0)
            size = []
            for j in range(nsp):
                s = int(rng.integers(2, 9 if nsp < 3 else 5))
                while _out_size(s, kernel[j], strides[j], dil[j], pads[j], pads[nsp + j]) < 1:
                    s += 1
                size.append(s)
            size = tuple(size)
            out_sp = tuple(_out_size(size[j], kernel[j], strides[j], dil[j], pads[j],
                                     pads[nsp + j], ceil) for j in range(nsp))
            attrs = PoolAttrs(kernel, strides, pads, dil, count_include_pad=i % 4 >= 2)
        tx, ty = dtypes(rng)
        x = rand_int(rng, tx, (n, c) + size)
        if i % 3 == 0:   # equal power-of-two scales: counts 2, 4, ... give exact halves
            s_x = s_y = 2.0**-4
        else:
            s_x = rng.uniform(0.01, 0.1)
            s_y = s_x * rng.uniform(0.4, 1.2)
        qx, qy = rand_q(rng, tx, s_x), near_q(rng, ty, s_y)
        want = R.qaverage_pool(x, qx, qy, attrs, out_sp, ty)
        p.node("QAveragePool", [p.input(x, qx)], attrs, want, qy,
               f"{size} {attrs} {tx.__name__}->{ty.__name__}")
    assert p.check(tmp_path) == 16


def test_qreduce_mean(tmp_path):
    rng = np.random.default_rng(SEED + 7)
    p = Program("qreducemean")
    for i in range(12):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 7, rank))
        axes = tuple(sorted(set(int(a) for a in rng.choice(rank, int(rng.integers(1, rank + 1)),
                                                           replace=False))))
        keepdims = bool(i % 2)
        tx, ty = dtypes(rng)
        x = rand_int(rng, tx, shape)
        s_x = 2.0**-4 if i % 3 == 0 else rng.uniform(0.01, 0.1)
        s_y = s_x if i % 3 == 0 else s_x * rng.uniform(0.4, 1.2)
        qx, qy = rand_q(rng, tx, s_x), near_q(rng, ty, s_y)
        want = R.qreduce_mean(x, qx, qy, axes, keepdims, ty)
        p.node("QReduceMean", [p.input(x, qx)], ReduceAttrs(axes, keepdims), want, qy,
               f"{shape} axes={axes} keepdims={keepdims} {tx.__name__}->{ty.__name__}")
    assert p.check(tmp_path) == 12


def test_qsoftmax(tmp_path):
    rng = np.random.default_rng(SEED + 8)
    p = Program("qsoftmax")
    for i in range(13):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 8, rank))
        axis = int(rng.integers(0, rank))
        end = axis + 1 if i % 3 else rank          # opset < 13: all axes from ``axis``
        if i == 12:
            shape, axis, end = (2, 70000), 1, 2    # past 65535 elements: a uint64 sum
        tx, ty = dtypes(rng)
        x = rand_int(rng, tx, shape)
        s_x = rng.uniform(0.01, 0.3) if i % 4 else 2.0**-3
        if i % 2:   # onnxruntime's fixed softmax output params: [0, 1] over the type
            qy = qp(1 / 256, -128) if ty == I8 else qp(1 / 256, 0)
        else:
            qy = qp(rng.uniform(1 / 255, 1 / 100), quant_range(ty)[0] + rng.integers(0, 10))
        qx = rand_q(rng, tx, s_x)
        want = R.qsoftmax(x, qx, qy, axis, end, ty)
        p.node("QSoftmax", [p.input(x, qx)], SoftmaxAttrs(axis, end), want, qy,
               f"{shape} axes [{axis}, {end}) {tx.__name__}->{ty.__name__}")
    assert p.check(tmp_path) == 13


def test_qsoftmax_close_to_float():
    """The integer softmax is within 1 LSB of quantizing the float softmax of the input."""
    rng = np.random.default_rng(SEED + 9)
    for ty, qy in ((I8, qp(1 / 256, -128)), (U8, qp(1 / 255, 0))):
        x = rand_int(rng, I8, (64, 10))
        qx = qp(0.1, 3)
        real = dequantize(x, 0.1, 3).astype(np.float64)
        e = np.exp(real - real.max(axis=1, keepdims=True))
        want = quantize(e / e.sum(axis=1, keepdims=True), qy.scale[0], qy.zero_point[0], ty)
        got = R.qsoftmax(x, qx, qy, 1, 2, ty)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_qmatmul(tmp_path):
    rng = np.random.default_rng(SEED + 10)
    p = Program("qmatmul")
    for i in range(14):
        m, k, n = (int(v) for v in rng.integers(1, 9, 3))
        batch = [int(d) for d in rng.integers(1, 4, int(rng.integers(0, 3)))]
        ba = [1 if rng.random() < 0.4 else d for d in batch]
        bb = [1 if rng.random() < 0.4 else d for d in batch][int(rng.integers(0, len(batch) + 1)):]
        sa, sb = tuple(ba) + (m, k), tuple(bb) + (k, n)
        if i == 10:
            sa = (k,)          # 1-D operands are promoted, then their axis dropped
        if i == 11:
            sb = (k,)
        ta, tb = dtypes(rng)
        ty = (I8, U8)[i % 2]
        halves, tie = i % 3 == 0, i % 7 == 6
        s_a, s_b = (2.0**-4, 2.0**-5) if halves or tie else rng.uniform(0.01, 0.05, 2)
        qa, qb = rand_q(rng, ta, s_a), rand_q(rng, tb, s_b)
        if tie:  # multiplier 0.25: SRDHM ties, then RDBP ties
            a, b = near(rng, ta, qa, sa, 4), near(rng, tb, qb, sb, 4)
        else:
            a, b = rand_int(rng, ta, sa), rand_int(rng, tb, sb)
        s_y = 2.0**-7 if tie else fit_scale(
            lambda sy: R.qmatmul(a, qa, b, qb, qp(sy, 0), np.int64, WIDE), s_a * s_b, halves)
        qy = rand_q(rng, ty, s_y)
        act = None if tie else rand_act(rng, i % 4, qy)
        want = R.qmatmul(a, qa, b, qb, qy, ty, bounds(act, ty, qy))
        b_name = p.const(b, qb) if i == 13 else p.input(b, qb)
        p.node("QMatMul", [p.input(a, qa), b_name], MatMulAttrs(act), want, qy,
               f"{sa}@{sb} {ta.__name__},{tb.__name__}->{ty.__name__} act={act}")
    assert p.check(tmp_path) == 14


# -- fold-qdq rules of the arithmetic ops (passes/fold_qdq_arith.py) ----------------------------

def _arith_qdq_model(path):
    """One QDQ model, a branch per rule: input -> Q -> DQ -> float op -> Q -> DQ -> output."""
    rng = np.random.default_rng(SEED + 11)
    q = {"a": (0.02, 3, I8), "b": (0.03, 128, U8), "c": (0.025, -7, I8), "d": (0.015, 0, I8)}
    shapes = {"a": (1, 4, 7, 6), "b": (1, 4, 7, 6), "c": (1, 1, 7, 6), "d": (1, 4, 6, 3)}
    nodes, inits = [], {}

    def qparams(name, scale, zp, dtype):
        inits[f"{name}_s"] = np.float32(scale)
        inits[f"{name}_z"] = np.array(zp, dtype=dtype)
        return [f"{name}_s", f"{name}_z"]

    for x, (s, z, t) in q.items():
        nodes.append(helper.make_node("QuantizeLinear", [x] + qparams(x, s, z, t), [f"{x}_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{x}_q", f"{x}_s", f"{x}_z"],
                                      [f"{x}_f"]))
    w = rng.integers(-127, 128, (1, 4, 1, 1)).astype(I8)
    inits["w_q"] = w
    inits["bias"] = rng.uniform(-0.5, 1.5, (1, 4, 1, 1)).astype(np.float32)  # a float constant
    nodes.append(helper.make_node("DequantizeLinear", ["w_q"] + qparams("w", 0.01, 0, I8),
                                  ["w_f"]))
    outs = {  # output -> (float nodes, output params)
        "add": ([helper.make_node("Add", ["a_f", "b_f"], ["add_r"])], (0.04, -10, I8)),
        "addrelu": ([helper.make_node("Add", ["a_f", "c_f"], ["addrelu_t"]),
                     helper.make_node("Relu", ["addrelu_t"], ["addrelu_r"])], (0.02, -128, I8)),
        "mul": ([helper.make_node("Mul", ["a_f", "w_f"], ["mul_r"])], (0.005, 5, I8)),
        "addc": ([helper.make_node("Add", ["b_f", "bias"], ["addc_r"])], (0.03, 120, U8)),
        "pool": ([helper.make_node("AveragePool", ["c_f"], ["pool_r"], kernel_shape=[3, 3],
                                   strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)],
                 (0.02, -5, I8)),
        "gap": ([helper.make_node("GlobalAveragePool", ["b_f"], ["gap_r"])], (0.01, 100, U8)),
        "mean": ([helper.make_node("ReduceMean", ["a_f"], ["mean_r"], axes=[2, 3],
                                   keepdims=0)], (0.01, 2, I8)),
        "softmax": ([helper.make_node("Softmax", ["b_f"], ["softmax_r"], axis=1)],
                    (1 / 256, 0, U8)),
        "matmul": ([helper.make_node("MatMul", ["a_f", "d_f"], ["matmul_r"])], (0.06, 1, I8)),
    }
    out_shapes = {"add": (1, 4, 7, 6), "addrelu": (1, 4, 7, 6), "mul": (1, 4, 7, 6),
                  "addc": (1, 4, 7, 6),
                  "pool": (1, 1, 4, 4), "gap": (1, 4, 1, 1), "mean": (1, 4),
                  "softmax": (1, 4, 7, 6), "matmul": (1, 4, 7, 3)}
    for name, (fnodes, (s, z, t)) in outs.items():
        nodes += fnodes
        nodes.append(helper.make_node("QuantizeLinear", [f"{name}_r"] + qparams(name, s, z, t),
                                      [f"{name}_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s",
                                                           f"{name}_z"], [name]))
    graph = helper.make_graph(
        nodes, "arith_qdq",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, shapes[x]) for x in q],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, out_shapes[n]) for n in outs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    qparams_of = {k: qp(s, z) for k, (s, z, _) in q.items()}
    qparams_of.update({k: qp(s, z) for k, (_, (s, z, _)) in outs.items()})
    dtype_of = {k: t for k, (_, (_, _, t)) in outs.items()}
    return shapes, q, qparams_of, dtype_of, w


def test_fold_arith_rules(tmp_path):
    from edgecc.compiler.driver import compile_model
    path = str(tmp_path / "arith_qdq.onnx")
    shapes, q, Q, T, w = _arith_qdq_model(path)
    r = compile_model(path)
    g = r.graph
    ops = [n.op for n in g.nodes]
    assert set(ops) == {"QuantizeLinear", "DequantizeLinear", "QAdd", "QMul", "QAveragePool",
                        "QReduceMean", "QSoftmax", "QMatMul"}, ops
    assert sorted(ops).count("QAdd") == 3
    fused = [n for n in g.nodes if n.op == "QAdd" and n.attrs.activation is not None]
    addc = next(n for n in g.nodes if n.op == "QAdd" and g.is_constant(n.inputs[1]))
    c_q, c_qp = g.constants[addc.inputs[1]], g.types[addc.inputs[1]].quant
    assert len(fused) == 1 and fused[0].attrs.activation.kind == "Relu"
    pool = next(n for n in g.nodes if n.op == "QAveragePool" and n.attrs.kernel == (3, 3))
    gap = next(n for n in g.nodes if n.op == "QAveragePool" and n.attrs.kernel == (7, 6))

    rng = np.random.default_rng(SEED + 12)
    feeds = {x: (rng.standard_normal(shapes[x]) * 1.2).astype(np.float32) for x in q}
    build = build_host(r.files, g, "model", str(tmp_path / "build"), sanitize=True, opt="-O1")
    ours = dict(zip(g.outputs, run_host(build, [feeds[x] for x in g.inputs])))
    qi = {x: quantize(feeds[x], s, z, t) for x, (s, z, t) in q.items()}
    relu = bounds(Activation("Relu"), T["addrelu"], Q["addrelu"])
    ref = {
        "add": R.qadd(qi["a"], Q["a"], qi["b"], Q["b"], Q["add"], T["add"]),
        "addrelu": R.qadd(qi["a"], Q["a"], qi["c"], Q["c"], Q["addrelu"], T["addrelu"], relu),
        "mul": R.qmul(qi["a"], Q["a"], w, qp(0.01, 0), Q["mul"], T["mul"]),
        "addc": R.qadd(qi["b"], Q["b"], c_q, c_qp, Q["addc"], T["addc"]),
        "pool": R.qaverage_pool(qi["c"], Q["c"], Q["pool"], pool.attrs, (4, 4), T["pool"]),
        "gap": R.qaverage_pool(qi["b"], Q["b"], Q["gap"], gap.attrs, (1, 1), T["gap"]),
        "mean": R.qreduce_mean(qi["a"], Q["a"], Q["mean"], (2, 3), False, T["mean"]),
        "softmax": R.qsoftmax(qi["b"], Q["b"], Q["softmax"], 1, 2, T["softmax"]),
        "matmul": R.qmatmul(qi["a"], Q["a"], qi["d"], Q["d"], Q["matmul"], T["matmul"]),
    }
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    theirs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    for name, want in ref.items():
        s, z = Q[name].scale[0], Q[name].zero_point[0]
        np.testing.assert_array_equal(ours[name], dequantize(want, s, z), err_msg=name)
        lsb = np.abs(ours[name].astype(np.float64) - theirs[name]) / s
        assert lsb.max() <= 1.0 + 1e-3, (name, lsb.max())  # ties: onnxruntime rounds to even


def test_resnet8_qdq_folds_to_integer(tmp_path):
    """onnxruntime's QDQ ResNet-8: the residual Adds, GlobalAveragePool and Softmax fold too,
    leaving only the input Quantize and the output Dequantize in float."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    import model_zoo
    from edgecc.analyze import analysis
    from edgecc.compiler.driver import compile_model

    float_path, q_path = str(tmp_path / "resnet8.onnx"), str(tmp_path / "resnet8_qdq.onnx")
    model_zoo.build("resnet8", float_path, seed=0)
    name = onnx.load(float_path).graph.input[0].name
    rng = np.random.default_rng(SEED + 13)
    samples = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(6)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter({name: x} for x in samples[:4])

        def get_next(self):
            return next(self.it, None)

    quantize_static(float_path, q_path, Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8)
    r = compile_model(q_path)
    info = analysis(r)["totals"]
    assert info["float_layers"] == []
    ops = [n.op for n in r.graph.nodes]
    assert ops[0] == "QuantizeLinear" and ops[-1] == "DequantizeLinear"
    assert ops.count("QAdd") == 3 and "QAveragePool" in ops and "QSoftmax" in ops
    assert not {"QuantizeLinear", "DequantizeLinear"} & set(ops[1:-1])
    build = build_host(r.files, r.graph, "model", str(tmp_path / "build"), sanitize=True,
                       opt="-O1")
    sess = ort.InferenceSession(q_path, providers=["CPUExecutionProvider"])
    s_out = r.graph.types[r.graph.nodes[-1].inputs[0]].quant.scale[0]
    for x in samples:
        ours = run_host(build, [x])[0]
        theirs = sess.run(None, {name: x})[0]
        assert np.abs(ours - theirs).max() <= 2 * s_out + 1e-6  # end to end: a few LSB at most
