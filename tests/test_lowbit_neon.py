"""The NEON bit-plane convolution (edgecc/backends/neon/lowbit_conv.py): its compile-time parts
(plane-pair groups, thresholds, padding patterns) against brute force, and chosen layers run
under qemu-aarch64 bit for bit against the numpy model (edgecc/ir/lowbit.py): the channel
counts of real layers (64, 128, 256, 512), every output kind (int8, k-bit codes, binary), the
int16 and int32 epilogues, streams long enough to run in chunks, channel counts off multiples
of 8, k-bit input against binary weights, padding patterns, batches and partial blocks."""
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from edgecc.backends.neon import lowbit_conv
from edgecc.ir.lowbit import Bits
from edgecc.ir.quant import requantize
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target

from test_lowbit_kernels import Chains, compile_for

U, S, BIN = (lambda k: Bits(k)), (lambda k: Bits(k, True)), Bits(1, binary=True)


def coef(xc, wc):
    return [[ci * cj for cj in wc.coefficients()] for ci in xc.coefficients()]


@pytest.mark.parametrize("xb, wb", [(1, 1), (2, 2), (3, 3), (4, 4), (2, 4), (4, 1)])
@pytest.mark.parametrize("xs, ws", [(False, True), (True, True), (False, False)])
def test_groups_cover_the_pairs_within_byte_range(xb, wb, xs, ws):
    xc, wc = Bits(xb, xs), Bits(wb, ws)
    gs = lowbit_conv.groups(coef(xc, wc))
    terms = sorted((i, j, g["f"] * k) for g in gs for i, j, k in g["terms"])
    assert terms == sorted((i, j, c) for i, row in enumerate(coef(xc, wc))
                           for j, c in enumerate(row))
    for g in gs:
        ks = [k for _, _, k in g["terms"]]
        assert ks[0] == 1
        pos, neg = 8 * sum(k for k in ks if k > 0), -8 * sum(k for k in ks if k < 0)
        assert (pos <= 255 and neg == 0) if g["unsigned"] else (pos <= 127 and neg >= -128)
    if (xb, wb, xs) == (2, 2, False):
        assert len(gs) == 1  # w2a2 (unsigned x, signed w): one group, one accumulator
    if (xb, wb, xs, ws) == (4, 4, False, True):
        assert len(gs) == 2


def test_thresholds_are_the_requantization_steps():
    rng = np.random.default_rng(7)
    m, bound = 6, 900
    bias = rng.integers(-300, 300, m)
    mult = rng.integers(2**30, 2**31, m)
    shift = rng.integers(-12, -4, m)
    lo, levels = -2, 3
    t = lowbit_conv.thresholds(bias, mult, shift, lo, levels, bound)
    acc = np.arange(-bound, bound + 1)[:, None]
    code = np.clip(requantize(acc + bias, mult, shift), lo, lo + levels)
    for k in range(1, levels + 1):
        reached = code >= lo + k
        assert np.array_equal(reached, acc >= t[k - 1][None]), k


def test_padding_patterns_name_the_taps_outside():
    c = dict(S=(2, 1), D=(1, 2), P=(1, 2), OH=4, OW=5, H=7, W=6, KH=3, KW=2)
    rpat, cpat, taps = lowbit_conv.padding_patterns(c)
    assert taps[0] == []
    for oh in range(4):
        for ow in range(5):
            want = [kh * 2 + kw for kh in range(3) for kw in range(2)
                    if not (0 <= oh * 2 - 1 + kh < 7 and 0 <= ow - 2 + 2 * kw < 6)]
            assert taps[rpat[oh] + cpat[ow]] == want


def add(ch: Chains, rng, xc, wc, yc, c, m, hw=(6, 6), **geometry):
    """One chain of the given codes and geometry (Chains.case, int8 outputs clamped to
    [-120, 110]); ``yc`` None: int8 output."""
    ch.case(rng, xc, wc, yc, c, m, hw=hw, s_x=2.0 ** -3, int8_bounds=(-120, 110), **geometry)


CASES = [  # (x, w, y or None for int8, C, M, extra geometry)
    (BIN, BIN, BIN, 64, 64, {}),                                   # a ResNet stage, binary
    (BIN, BIN, None, 256, 20, dict(p=(1, 2, 0, 1), hw=(6, 7))),    # patterns, int8, M % 8
    (BIN, BIN, U(2), 128, 128, dict(kernel=(1, 1), p=(0, 0, 0, 0))),
    (BIN, BIN, S(3), 72, 24, dict(s=(2, 2), d=(2, 1), hw=(9, 8))),
    (U(2), S(2), U(2), 64, 64, {}),                                # w2a2
    (U(2), S(2), None, 128, 128, dict(kernel=(1, 1), p=(0, 0, 0, 0), hw=(5, 5))),
    (U(4), S(4), S(4), 256, 16, dict(hw=(4, 5))),                  # w4a4: int32 epilogue
    (U(4), S(4), U(4), 512, 8, dict(hw=(4, 4), p=(0, 1, 1, 0))),   # in 2 chunks
    (U(2), S(2), U(1), 1216, 8, dict(hw=(3, 4))),                  # w2a2 in 2 chunks
    (S(2), S(3), None, 100, 13, dict(s=(2, 1), d=(2, 2), p=(2, 1, 0, 2), hw=(8, 9))),
    (U(3), BIN, None, 33, 12, {}),                                 # k-bit x, binary w
    (U(3), BIN, BIN, 130, 9, dict(n=2, hw=(5, 5))),
    (S(4), S(1), U(2), 13, 5, dict(kernel=(5, 3), n=2, hw=(7, 5), p=(2, 0, 1, 2))),
    (BIN, BIN, BIN, 8, 3, dict(kernel=(2, 2), p=(0, 0, 1, 1), hw=(3, 3), n=2)),
]


def test_neon_layers_are_bit_exact(tmp_path):
    if shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("needs qemu-aarch64 and aarch64-linux-gnu-gcc")
    rng = np.random.default_rng(1515)
    ch = Chains()
    for xc, wc, yc, c, m, geo in CASES:
        add(ch, rng, xc, wc, yc, c, m, **geo)
    ch.g.verify()
    files, graph = compile_for(ch, "aarch64-neon")
    code = files["model.c"]
    assert "edgecc_popcount_and(" not in code and "edgecc_popcount_xor(" not in code
    assert code.count("EDGECC_BITS_KERNEL void") == len(CASES)
    build = build_host(files, graph, "model", str(tmp_path), opt="-O2",
                       **get_target("aarch64-neon").build_options())
    ch.compare(run_host(build, ch.feeds), "aarch64-neon")


def test_plan_paths():
    """The cases above reach the paths they are meant to (int16/int32 epilogue, chunks,
    unaligned streams, padding patterns)."""
    rng = np.random.default_rng(3)
    ch = Chains()
    for xc, wc, yc, c, m, geo in CASES:
        add(ch, rng, xc, wc, yc, c, m, **geo)
    ctx = SimpleNamespace(graph=ch.g, view=lambda name: SimpleNamespace(name=name))
    plans = [lowbit_conv.plan(ctx, n)[0] for n in ch.g.nodes if n.op == "QConvBits"]
    assert [p["S16"] for p in plans[:2]] == [True, False]
    assert plans[0]["NPAT"] > 1 and plans[1]["NPAT"] > 1
    assert not plans[6]["S16"] and plans[7]["NCH"] == 2 and plans[8]["NCH"] == 2
    assert not plans[9]["ALIGNED"] and plans[10]["W_BINARY"]
    assert any(p["NPIX"] % p["PB"] for p in plans) and any(p["M"] % p["Q"] for p in plans)
    assert any(p["PER_M"] for p in plans) and any(len(p["groups"]) > 1 for p in plans)
