"""Low-bit kernels (issue 15): PackBits, QConvBits, UnpackBits bit for bit against the numpy
model of the bit-plane math (edgecc/ir/lowbit.py), and that model against a plain integer
convolution of the unpacked values (verify/reference.conv_int: no bit planes).

Random cases (fixed seeds), one chain per case in one IR graph: int8 NCHW input -> PackBits ->
QConvBits -> int8 NCHW, or -> packed codes -> UnpackBits -> int8. Codes of 1-4 bits, signed
and unsigned, binary (-1/+1, XOR + popcount), and k-bit codes against binary weights; channel
counts off multiples of 8, 32, 64 and 128; kernels 1x1 to 5x3, strides, dilations, asymmetric
padding; power-of-two scales (ties).
Built with -fsanitize=address,undefined for the portable kernels (generic, Cortex-M's C) and
x86; for aarch64 (a static binary under qemu-aarch64) without.
"""
import shutil

import numpy as np
import pytest

from edgecc.backends.codegen import generate
from edgecc.compiler.driver import _layout_and_plan
from edgecc.ir import DType, Graph, NoAttrs, Node, QuantParams, TensorType
from edgecc.ir.lowbit import Bits, conv_acc, pack, qconv_bits, unpack
from edgecc.ir.ops.lowbit_ops import BitsConvAttrs, packed_type
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target
from edgecc.verify.reference import conv_int

CODES = [Bits(1), Bits(2), Bits(3), Bits(4), Bits(2, True), Bits(3, True), Bits(4, True)]
CHANNELS = [1, 3, 7, 8, 13, 16, 31, 33, 64, 65, 100, 128, 130]


def rand_code(rng):
    return CODES[rng.integers(len(CODES))]


def values(rng, code, shape):
    lo, hi = code.levels
    v = rng.integers(lo, hi + 1, shape)
    return np.where(v == 0, 1, v) if code.binary else v


def geometry(rng, big=False):
    kh, kw = [(1, 1), (3, 3), (3, 3), (5, 3), (2, 2), (1, 3)][rng.integers(6)]
    s = tuple(int(v) for v in rng.integers(1, 3, 2))
    d = tuple(int(v) for v in rng.integers(1, 3, 2)) if rng.random() < 0.3 else (1, 1)
    p = tuple(int(v) for v in rng.integers(0, 3, 4)) if rng.random() < 0.7 else (0, 0, 0, 0)
    h = int(rng.integers((kh - 1) * d[0] + 1, 10 if not big else 16))
    w = int(rng.integers((kw - 1) * d[1] + 1, 10 if not big else 16))
    oh = (h + p[0] + p[2] - (kh - 1) * d[0] - 1) // s[0] + 1
    ow = (w + p[1] + p[3] - (kw - 1) * d[1] - 1) // s[1] + 1
    return (kh, kw), s, p, d, (h, w), (oh, ow)


class Chains:
    """Independent PackBits -> QConvBits [-> UnpackBits] chains in one graph."""

    def __init__(self):
        self.g = Graph("lowbit", [], [], [], {}, {})
        self.feeds, self.expected, self.labels = [], [], []

    def add(self, rng, binary=False, packed_out=None):
        """A chain of random codes and geometry."""
        xc = Bits(1, binary=True) if binary else rand_code(rng)
        wc = Bits(1, binary=True) if binary else (rand_code(rng) if rng.random() < 0.3 else
                                                  [Bits(1, True), Bits(2, True), Bits(3, True),
                                                   Bits(4, True)][rng.integers(4)])
        if not binary and rng.random() < 0.15:
            wc = Bits(1, binary=True)  # k-bit codes against -1/+1 weights
        kernel, s, p, d, hw, _ = geometry(rng)
        n = int(rng.integers(1, 3)) if rng.random() < 0.2 else 1
        c = int(CHANNELS[rng.integers(len(CHANNELS))])
        m = int(rng.integers(1, 21)) if rng.random() < 0.7 else int(rng.integers(60, 70))
        packed_out = rng.random() < 0.5 if packed_out is None else packed_out
        yc = (Bits(1, binary=True) if rng.random() < 0.25 else rand_code(rng)) if packed_out \
            else None
        self.case(rng, xc, wc, yc, c, m, kernel, s, p, d, hw, n, bias=rng.random() < 0.8,
                  pow2_weights=rng.random() < 0.5)

    def case(self, rng, xc, wc, yc, c, m, kernel=(3, 3), s=(1, 1), p=(1, 1, 1, 1), d=(1, 1),
             hw=(6, 7), n=1, bias=True, pow2_weights=False, s_x=None, int8_bounds=None):
        """One PackBits -> QConvBits [-> UnpackBits] chain of the given codes and geometry
        (``yc`` None: int8 output, clamped to ``int8_bounds`` or random ones); random values,
        power-of-two input and output scales (ties), the expected output from the model."""
        k = len(self.labels)
        h, w = hw
        out_hw = tuple((hw[i] + p[i] + p[i + 2] - (kernel[i] - 1) * d[i] - 1) // s[i] + 1
                       for i in range(2))
        zx = int(rng.integers(-100, 100))
        codes = values(rng, xc, (n, c, h, w))
        x = (codes + zx).astype(np.int8)
        wv = values(rng, wc, (m, c) + kernel)
        s_x = 2.0 ** -int(rng.integers(2, 6)) if s_x is None else s_x
        s_w = 2.0 ** -rng.integers(3, 8, m).astype(np.float64)
        if not pow2_weights:
            s_w = s_w * rng.uniform(0.6, 1.0, m)
        s_w = s_w.astype(np.float32).astype(np.float64)
        b = rng.integers(-400, 400, m).astype(np.int32) if bias else None
        xp = pack(np.moveaxis(codes, 1, -1), xc)
        wp = pack(np.moveaxis(wv, 1, -1), wc)
        acc = conv_acc(xp, xc, wp, wc, c, kernel, s, p, d, out_hw)
        spread = max(float(np.std(acc * s_w.reshape(1, -1, 1, 1))), 1e-3)
        packed_out = yc is not None
        s_y = float(np.float32(2.0 ** round(np.log2(spread * s_x / (4 if packed_out else 40)))))
        zy = 0 if packed_out else int(rng.integers(-60, 60))
        lo, hi = yc.levels if packed_out else (
            int8_bounds or sorted(int(v) for v in rng.integers(-128, 128, 2)))
        attrs = BitsConvAttrs(kernel, s, p, d, lo, hi)
        want = qconv_bits(xp, xc, wp, wc, b, s_x, s_w, s_y, c, attrs, out_hw, zy,
                          binary_out=packed_out and yc.binary)
        zu = int(rng.integers(-100, 100))
        if packed_out:
            want = want + zu
        label = (f"case {k}: x {xc} w {wc} y {yc} c={c} m={m} n={n} hw={h}x{w} k={kernel} "
                 f"s={s} p={p} d={d}")
        g = self.g
        xin = f"x{k}"
        g.inputs.append(xin)
        g.types[xin] = TensorType(DType.INT8, x.shape, QuantParams((s_x,), (zx,)))
        g.types[f"xb{k}"] = packed_type(xc, (n, h, w, c), s_x)
        g.constants[f"w{k}"] = wp
        g.types[f"w{k}"] = packed_type(wc, (m,) + kernel + (c,), s_w, axis=0)
        ins = (f"xb{k}", f"w{k}")
        if b is not None:
            g.constants[f"b{k}"] = b
            g.types[f"b{k}"] = TensorType(DType.INT32, b.shape)
            ins += (f"b{k}",)
        g.nodes.append(Node("PackBits", (xin,), (f"xb{k}",), NoAttrs(), f"pack{k}"))
        out = f"y{k}"
        if packed_out:
            g.types[f"yb{k}"] = packed_type(yc, (n,) + out_hw + (m,), s_y)
            g.nodes.append(Node("QConvBits", ins, (f"yb{k}",), attrs, f"conv{k}"))
            g.nodes.append(Node("UnpackBits", (f"yb{k}",), (out,), NoAttrs(), f"unpack{k}"))
            g.types[out] = TensorType(DType.INT8, (n, m) + out_hw, QuantParams((s_y,), (zu,)))
        else:
            g.nodes.append(Node("QConvBits", ins, (out,), attrs, f"conv{k}"))
            g.types[out] = TensorType(DType.INT8, (n, m) + out_hw, QuantParams((s_y,), (zy,)))
        g.outputs.append(out)
        self.feeds.append(x)
        self.expected.append(want.astype(np.int8))
        self.labels.append(label)
        assert want.min() >= -128 and want.max() <= 127

    def compare(self, outs, what):
        bad = []
        for o, e, label in zip(outs, self.expected, self.labels):
            if not np.array_equal(o, e):
                dif = np.abs(o.astype(np.int64) - e.astype(np.int64))
                bad.append(f"{what} {label}: {np.count_nonzero(dif)} of {e.size} differ, "
                           f"max {dif.max()}")
        assert not bad, "\n".join(bad)


def chains(seed, count, binary):
    rng = np.random.default_rng(seed)
    ch = Chains()
    for _ in range(count):
        ch.add(rng, binary=binary)
    ch.g.verify()
    return ch


def test_bit_plane_model_is_the_integer_convolution():
    """The numpy model's AND/XOR + popcount sums equal a plain integer convolution of the
    unpacked values (padding: 0, also for binary operands), and pack/unpack round-trip."""
    rng = np.random.default_rng(150)
    for case in range(60):
        binary = case % 4 == 0
        xc = Bits(1, binary=True) if binary else rand_code(rng)
        wc = Bits(1, binary=True) if binary or case % 4 == 1 else rand_code(rng)
        kernel, s, p, d, (h, w), out_hw = geometry(rng)
        c, m = int(CHANNELS[rng.integers(len(CHANNELS))]), int(rng.integers(1, 9))
        x, wv = values(rng, xc, (2, c, h, w)), values(rng, wc, (m, c) + kernel)
        xp, wp = pack(np.moveaxis(x, 1, -1), xc), pack(np.moveaxis(wv, 1, -1), wc)
        assert np.array_equal(unpack(xp, xc, c), np.moveaxis(x, 1, -1))
        assert xp.shape == (2, h, w, xc.bits, (c + 7) // 8)
        want = conv_int(x, wv, dict(strides=s, pads=[p[0], p[1], p[2], p[3]], dilations=d))
        assert np.array_equal(conv_acc(xp, xc, wp, wc, c, kernel, s, p, d, out_hw), want)


def test_binary_padding_adds_nothing():
    """Documented padding semantics for binary layers: a tap outside the input contributes 0
    (neither +1 nor -1), as a zero-padded convolution of the -1/+1 values."""
    xc = Bits(1, binary=True)
    x = np.ones((1, 8, 1, 1), np.int64)      # one pixel of +1s, 3x3 kernel of +1s, pad 1
    w = np.ones((1, 8, 3, 3), np.int64)
    acc = conv_acc(pack(np.moveaxis(x, 1, -1), xc), xc, pack(np.moveaxis(w, 1, -1), xc), xc,
                   8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (1, 1))
    assert acc.item() == 8  # the centre tap only: 8 agreeing channels


@pytest.mark.parametrize("binary", [False, True])
def test_portable_kernels_are_bit_exact(tmp_path, binary):
    ch = chains(151 + binary, 40, binary)
    files = generate(ch.g, _layout_and_plan(ch.g, "generic")[1], "model",
                     get_target("generic").backend_chain())
    build = build_host(files, ch.g, "model", str(tmp_path), sanitize=True, opt="-O1")
    ch.compare(run_host(build, ch.feeds), "generic")


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return set(next((line.split(":", 1)[1].split() for line in f
                             if line.startswith("flags")), []))
    except OSError:
        return set()


def compile_for(ch: Chains, target: str):
    graph, plan = _layout_and_plan(ch.g, target)
    record = get_target(target)
    files = generate(graph, plan, "model", record.backend_chain())
    files.update(record.runtime_files(files))
    return files, graph


# targets whose own kernels take every QConvBits case here (the portable popcount helpers
# must then be absent from the generated C)
SIMD_X86 = True
SIMD_NEON = True
SIMD = {"x86-avx2": SIMD_X86, "aarch64-neon": SIMD_NEON}


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("target", ["cortex-m7", "x86-avx2", "aarch64-neon"])
def test_target_kernels_are_bit_exact(tmp_path, target, binary):
    """Cortex-M's build is compiled for the host here (its C is portable; the firmware runs
    in test_cortex_m_* and the Brevitas test); x86 natively, aarch64 under qemu-aarch64."""
    record = get_target(target)
    if target.startswith("aarch64") and (shutil.which("qemu-aarch64") is None or
                                         shutil.which("aarch64-linux-gnu-gcc") is None):
        pytest.skip("needs qemu-aarch64 and aarch64-linux-gnu-gcc")
    if target.startswith("x86") and not {"avx2", "fma"} <= cpu_flags():
        pytest.skip(f"this CPU cannot run {target}")
    ch = chains(161 + binary, 30, binary)
    files, graph = compile_for(ch, target)
    if SIMD.get(target):
        code = files["model.c"]
        assert "edgecc_popcount_and(" not in code and "edgecc_popcount_xor(" not in code, \
            f"a case left {target}'s kernels"
    opts = {} if target.startswith("cortex") else record.build_options()
    sanitize = not target.startswith("aarch64")  # a static qemu-user binary: no ASan there
    build = build_host(files, graph, "model", str(tmp_path), sanitize=sanitize, opt="-O1",
                       **opts)
    ch.compare(run_host(build, ch.feeds), target)


def test_first_layer_writes_packed_codes(tmp_path):
    """QConvPack (an int8 QConv writing k-bit codes as planes; any group) equals the int8
    model's convolution clamped to the codes, through UnpackBits, under ASan/UBSan."""
    from edgecc.ir import quant_ref as R
    from edgecc.ir.ops.lowbit_ops import PackConvAttrs
    rng = np.random.default_rng(170)
    g = Graph("pack", [], [], [], {}, {})
    feeds, expected = [], []
    for k in range(16):
        kernel, s, p, d, (h, w), out_hw = geometry(rng)
        c = int(rng.choice([1, 3, 4, 8, 13]))
        group = c if k % 4 == 3 else 1
        m = c if group > 1 else int(rng.integers(1, 40))
        x = rng.integers(-128, 128, (1, c, h, w)).astype(np.int8)
        wv = rng.integers(-127, 128, (m, c // group) + kernel).astype(np.int8)
        b = rng.integers(-3000, 3000, m).astype(np.int32)
        yc = rand_code(rng)
        qx = QuantParams((0.02,), (int(rng.integers(-20, 20)),))
        qw = QuantParams(tuple(float(np.float32(v)) for v in rng.uniform(0.002, 0.01, m)),
                         (0,) * m, 0)
        qy = QuantParams((float(2.0 ** -rng.integers(0, 4)),), (0,))
        attrs = PackConvAttrs(kernel, s, p, d, group, None, lo=yc.levels[0], hi=yc.levels[1])
        want = R.qconv(x, qx, wv, qw, b, qy, attrs, out_hw, np.int8, yc.levels)
        zu = int(rng.integers(-100, 100))
        g.inputs.append(f"x{k}")
        g.types[f"x{k}"] = TensorType(DType.INT8, x.shape, qx)
        g.constants[f"w{k}"], g.constants[f"b{k}"] = wv, b
        g.types[f"w{k}"] = TensorType(DType.INT8, wv.shape, qw)
        g.types[f"b{k}"] = TensorType(DType.INT32, b.shape)
        g.types[f"yb{k}"] = packed_type(yc, (1,) + out_hw + (m,), qy.scale[0])
        g.types[f"y{k}"] = TensorType(DType.INT8, (1, m) + out_hw, QuantParams(qy.scale, (zu,)))
        g.nodes += [Node("QConvPack", (f"x{k}", f"w{k}", f"b{k}"), (f"yb{k}",), attrs, f"c{k}"),
                    Node("UnpackBits", (f"yb{k}",), (f"y{k}",), NoAttrs(), f"u{k}")]
        g.outputs.append(f"y{k}")
        feeds.append(x)
        expected.append((want.astype(np.int64) + zu).astype(np.int8))
    g.verify()
    files = generate(g, _layout_and_plan(g, "generic")[1], "model",
                     get_target("generic").backend_chain())
    outs = run_host(build_host(files, g, "model", str(tmp_path), sanitize=True, opt="-O1"), feeds)
    for k, (o, e) in enumerate(zip(outs, expected)):
        assert np.array_equal(o, e), f"case {k}"
