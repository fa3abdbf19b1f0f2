"""The x86 kernel of QConvBits (edgecc/backends/x86/lowbit_conv.py) bit for bit against the
numpy model of the bit-plane math (edgecc/ir/lowbit.py), on x86-avx2 and on x86-avx512-vnni
(the same C, whose k-bit loop then takes vpdpbusd), under ASan + UBSan.

Besides test_lowbit_kernels' random chains: wide layers (64, 128, 256 input channels and
channel counts off 8, 32), the bench's layer shapes at a small size, binary x and w, k-bit x
against -1/+1 weights, signed and unsigned codes of 1-4 bits, int8 and packed outputs (codes of
1-4 bits, binary), padding, strides, dilations, batches; every case must run on the x86 kernel
(no portable popcount helper in the C), whose repacked weights keep the planes' flash bytes.
"""
import re

import numpy as np
import pytest
from test_lowbit_kernels import Chains, chains, compile_for, cpu_flags

from edgecc.ir.lowbit import Bits
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target

pytestmark = pytest.mark.skipif(not {"avx2", "fma"} <= cpu_flags(), reason="needs AVX2 and FMA")
TARGETS = ["x86-avx2", pytest.param("x86-avx512-vnni", marks=pytest.mark.skipif(
    not {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"} <= cpu_flags(),
    reason="the CPU lacks AVX-512 VL or VNNI"))]
B = Bits(1, binary=True)


def run(ch: Chains, target, tmp_path):
    files, graph = compile_for(ch, target)
    code = files["model.c"]
    assert "edgecc_popcount_and(" not in code and "edgecc_popcount_xor(" not in code, \
        "a QConvBits left the x86 kernel"
    build = build_host(files, graph, "model", str(tmp_path), sanitize=True, opt="-O1",
                       **get_target(target).build_options())
    ch.compare(run_host(build, ch.feeds), target)
    return files


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("target", TARGETS)
def test_random_chains(tmp_path, target, binary):
    run(chains(171 + binary, 30, binary), target, tmp_path)


@pytest.mark.parametrize("target", TARGETS)
def test_wide_layers(tmp_path, target):
    """Wide and odd channel counts, every code pairing the kernels treat differently."""
    rng = np.random.default_rng(172)
    ch = Chains()
    u2, u4, s2, s3, s4 = Bits(2), Bits(4), Bits(2, True), Bits(3, True), Bits(4, True)
    for xc, wc, yc, c, m in [(B, B, B, 64, 64), (B, B, None, 256, 24), (B, B, u2, 128, 72),
                             (B, B, s4, 100, 13), (u2, s2, u2, 64, 64), (u4, s4, u4, 256, 40),
                             (u4, s4, None, 128, 33), (s4, s3, s2, 64, 17), (u2, B, B, 256, 16),
                             (s3, Bits(4), Bits(3), 72, 9), (Bits(1), Bits(1, True), B, 130, 8),
                             (u4, B, None, 13, 21), (s2, s4, u4, 31, 65)]:
        ch.case(rng, xc, wc, yc, c, m)
    ch.case(rng, B, B, B, 256, 32, kernel=(3, 3), s=(2, 2), p=(1, 0, 1, 0), hw=(9, 8))
    ch.case(rng, u4, s4, u4, 64, 16, kernel=(3, 3), d=(2, 2), p=(2, 2, 2, 2), hw=(7, 9))
    ch.case(rng, B, B, u2, 64, 16, kernel=(3, 3), d=(2, 1), p=(0, 2, 1, 0), n=2)
    ch.case(rng, u2, s2, None, 128, 16, kernel=(1, 1), p=(0, 0, 0, 0), hw=(5, 5), n=2,
             bias=False)
    ch.case(rng, B, B, B, 128, 16, kernel=(1, 1), p=(0, 0, 0, 0), hw=(5, 5), bias=False)
    ch.case(rng, u4, s4, None, 8, 8, kernel=(5, 3), p=(2, 0, 2, 3), hw=(3, 2))
    run(ch, target, tmp_path)


def test_bench_layers_keep_the_flash_bytes(tmp_path):
    """The bench's layer shapes (bench/lowbit.py) at 8x8: exact, and each repacked weight table
    no larger than the planes it replaces (1, 2 and 4-bit weights)."""
    rng = np.random.default_rng(173)
    ch = Chains()
    shapes = [(64, 64, 3), (128, 128, 1), (256, 256, 3)]
    codes = [(B, B), (Bits(2), Bits(2, True)), (Bits(4), Bits(4, True))]
    for cin, cout, k in shapes:
        for xc, wc in codes:
            ch.case(rng, xc, wc, xc, cin, cout, kernel=(k, k), p=(k // 2,) * 4, hw=(8, 8))
    files = run(ch, "x86-avx2", tmp_path)
    sizes = {int(k): int(n) for k, n in re.findall(
        r"const uint8_t model_w__L\d+_qconvbits_conv(\d+)_w\[(\d+)\]", files["model_weights.c"])}
    assert len(sizes) == len(shapes) * len(codes)
    for k, size in sizes.items():
        assert size <= ch.g.constants[f"w{k}"].size, ch.labels[k]
