"""Shared harness of the int8 kernel tests (test_int8_kernels.py, test_int8_arith_kernels.py).

A Program holds many independent single-node cases in one IR graph, compiled to one C program
with sanitizers and run once; the helpers draw random quantization parameters, integer inputs,
fused activations and output scales (powers of two where requantization should land on halves).
"""
import math
import re

import numpy as np

from edgecc.backends.codegen import generate
from edgecc.backends.generic.int8 import activation_bounds
from edgecc.ir import Activation, DType, Graph, Node, QuantParams, TensorType
from edgecc.ir.quant import quant_range
from edgecc.passes.memory_plan import plan_memory
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target

GENERIC = get_target("generic").backend_chain()

SEED = 1234
I8, U8 = np.int8, np.uint8


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
        files = generate(self.g, plan_memory(self.g), "model", GENERIC)
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


def out_size(size, k, s, d, pb, pe, ceil=False):
    eff = (k - 1) * d + 1
    span = size + pb + pe - eff
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + pb:  # the last window must start inside
        out -= 1
    return out


def spatial_sizes(rng, high, kernel, strides, dil, pads, ceil=False):
    """Random input sizes in [2, high), one per spatial axis, each grown until its window fits
    at least once (without ceil mode); returns (input sizes, output sizes)."""
    nsp = len(kernel)
    size = []
    for j in range(nsp):
        s = int(rng.integers(2, high))
        while out_size(s, kernel[j], strides[j], dil[j], pads[j], pads[nsp + j]) < 1:
            s += 1
        size.append(s)
    out_sp = tuple(out_size(size[j], kernel[j], strides[j], dil[j], pads[j], pads[nsp + j], ceil)
                   for j in range(nsp))
    return tuple(size), out_sp


def layers_of(code: str, marker: str) -> int:
    """How many layers the generated functions whose code contains ``marker`` run (layers of
    one shape share a function: its calls are counted)."""
    functions = [re.search(r"EDGECC_LAYER void (\w+)\(", block).group(1)
                 for block in code.split("\n/* node ")[1:] if marker in block]
    return sum(len(re.findall(rf"\b{f}\(", code)) - 1 for f in functions)


def qadd_program(name, rng, count, edge):
    """Same-shape QAdds (sizes on and off multiples of 8 and 16), random and power-of-two
    scales, an output scale far below the inputs' (a left shift), clamps; ``edge(rng, shape,
    kind)`` draws the inputs (kind 0..3: the backend test's extreme-value mixes)."""
    from edgecc.ir import quant_ref as R
    from edgecc.ir.ops.int8_arith_ops import QBinaryAttrs
    p = Program(name)
    for i in range(count):
        shape = tuple(int(v) for v in rng.integers(1, 9, int(rng.integers(1, 5))))
        if i % 3 == 0:
            s_a = s_b = 2.0**-5
            s_y = 2.0 ** -int(rng.integers(3, 5))
        else:
            s_a, s_b = rng.uniform(0.005, 0.1, 2)
            s_y = (s_a + s_b) * rng.uniform(0.6, 1.5)
        if i % 7 == 5:
            s_y = max(s_a, s_b) * 2.0**-21
        qa, qb, qy = rand_q(rng, I8, s_a), rand_q(rng, I8, s_b), rand_q(rng, I8, s_y)
        a, b = edge(rng, shape, i % 4), edge(rng, shape, (i + 1) % 4)
        act = rand_act(rng, i % 4, qy)
        want = R.qadd(a, qa, b, qb, qy, I8, bounds(act, I8, qy))
        p.node("QAdd", [p.input(a, qa), p.input(b, qb)], QBinaryAttrs(act), want, qy,
               f"{shape} act={act}")
    return p
