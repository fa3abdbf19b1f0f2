"""edgecc's CMSIS-NN-compatible runtime (edgecc/runtime_c/cmsis_nn/): the convolutions,
depthwise convolutions and fully connected layers against the numpy model of the documented
semantics (edgecc/backends/cmsis/cmsis_reference.py), bit for bit, through the sanitized C
driver of cmsis_testlib.py. Cases cover padding, stride, dilation, groups, channel
multipliers, activation clamps, odd sizes, non-zero filter offsets, bias or none, and
multipliers of exactly 2^30 so that requantization lands on exact halves. The convolutions run
with exactly their *_get_buffer_size() bytes of scratch (allocated at that size, so ASan sees
any access past it), with none, or with a misaligned buffer (both computed without scratch),
and their fast paths have cases of their own: pointwise convolutions (packed filters; channel
counts around the packing's thresholds and chunk sizes, its largest partial sums) and
depthwise ones with many fully inside positions. The scratch sizes themselves are checked too.
Pooling, softmax, elementwise ops, the fixed-point helpers, the reference's cross-checks and
the compile checks are in test_cmsis_nn_pool_elementwise.py.
"""
import numpy as np
import pytest

from cmsis_testlib import (BUFSIZE, CONV, DWCONV, FC, Batch, acc_std, activation, build_driver,
                           geometry, i8, multipliers, offsets, rand_bias)
from edgecc.backends.cmsis import cmsis_reference as R


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return build_driver(tmp_path_factory)


# -- the function tests -------------------------------------------------------------------

def test_convolve_wrapper_s8(build):
    rng, batch = np.random.default_rng(11), Batch(build)
    for i in range(60):
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        h, sh, dh, ph, oh = geometry(rng, kh)
        w, sw, dw, pw, ow = geometry(rng, kw)
        groups = int(rng.choice([1, 1, 1, 2, 3]))
        cg, per_group = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        n, c_in, c_out = int(rng.integers(1, 3)), cg * groups, per_group * groups
        small = rng.random() < 0.3
        x, filt = i8(rng, (n, h, w, c_in), small), i8(rng, (c_out, kh, kw, cg), small)
        bias = rand_bias(rng, c_out, 5000, small)
        in_off, out_off = offsets(rng, small)
        m, s = multipliers(rng, c_out, acc_std(kh * kw * cg, in_off, small=small))
        lo, hi = activation(rng, out_off)
        want = R.convolve_s8(x, filt, bias, input_offset=in_off, output_offset=out_off,
                             multipliers=m, shifts=s, stride=(sh, sw), padding=(ph, pw),
                             dilation=(dh, dw), out_hw=(oh, ow), act_min=lo, act_max=hi)
        params = [n, h, w, c_in, c_out, kh, kw, cg, oh, ow, sh, sw, ph, pw, dh, dw,
                  in_off, out_off, lo, hi, 0, i % 3]
        batch.add(CONV, params, x, filt, want, f"conv{i} {params}", bias, m, s)
    assert batch.run() == 60


def test_depthwise_conv_wrapper_s8(build):
    rng, batch = np.random.default_rng(12), Batch(build)
    for i in range(60):
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        h, sh, dh, ph, oh = geometry(rng, kh)
        w, sw, dw, pw, ow = geometry(rng, kw)
        n, c_in = int(rng.integers(1, 3)), int(rng.integers(1, 8))
        ch_mult = int(rng.choice([1, 1, 2, 3]))
        c_out = c_in * ch_mult
        small = rng.random() < 0.3
        x, filt = i8(rng, (n, h, w, c_in), small), i8(rng, (1, kh, kw, c_out), small)
        bias = rand_bias(rng, c_out, 5000, small)
        in_off, out_off = offsets(rng, small)
        m, s = multipliers(rng, c_out, acc_std(kh * kw, in_off, small=small))
        lo, hi = activation(rng, out_off)
        want = R.depthwise_conv_s8(x, filt, bias, ch_mult=ch_mult, input_offset=in_off,
                                   output_offset=out_off, multipliers=m, shifts=s,
                                   stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                                   out_hw=(oh, ow), act_min=lo, act_max=hi)
        params = [n, h, w, c_in, c_out, kh, kw, 1, oh, ow, sh, sw, ph, pw, dh, dw,
                  in_off, out_off, lo, hi, ch_mult, i % 3]
        batch.add(DWCONV, params, x, filt, want, f"dw{i} {params}", bias, m, s)
    assert batch.run() == 60


def pointwise_case(rng, n, h, w, c_in, c_out, small=False, in_off=None):
    """A 1x1, stride 1, unpadded convolution (the matrix-product path) and its expectation."""
    x, filt = i8(rng, (n, h, w, c_in), small), i8(rng, (c_out, 1, 1, c_in), small)
    bias = rand_bias(rng, c_out, 50000, small)
    off, out_off = offsets(rng, small)
    in_off = off if in_off is None else in_off
    m, s = multipliers(rng, c_out, acc_std(c_in, in_off, small=small))
    lo, hi = activation(rng, out_off)
    return x, filt, bias, in_off, out_off, m, s, lo, hi


def test_convolve_pointwise(build):
    """1x1 convolutions with stride 1 and no padding: the matrix-product path, its filters
    packed in the scratch buffer (two sums per 64-bit multiply-accumulate, recovered after at
    most a chunk of channels) or not (no buffer, or a misaligned one); channel counts around
    the packing thresholds and the chunk sizes, output channels not a multiple of 4, input
    offsets up to where no chunk fits."""
    rng, batch = np.random.default_rng(19), Batch(build)
    c_ins = [1, 3, 8, 15, 16, 17, 64, 127, 128, 129, 200, 256, 257, 300]
    offs = [None, None, None, 128, -127, 300, -2000, 20000, 40000]
    for i in range(90):
        n, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 6))
        c_in, c_out = c_ins[i % len(c_ins)], int(rng.integers(1, 14))
        small = rng.random() < 0.3
        x, filt, bias, in_off, out_off, m, s, lo, hi = pointwise_case(
            rng, n, h, w, c_in, c_out, small, offs[i % len(offs)])
        want = R.convolve_s8(x, filt, bias, input_offset=in_off, output_offset=out_off,
                             multipliers=m, shifts=s, out_hw=(h, w), act_min=lo, act_max=hi)
        params = [n, h, w, c_in, c_out, 1, 1, c_in, h, w, 1, 1, 0, 0, 1, 1,
                  in_off, out_off, lo, hi, 0, [1, 1, 0, 2][i % 4]]
        batch.add(CONV, params, x, filt, want, f"pointwise{i} {params}", bias, m, s)
    # the largest partial sums the packing allows: every term +-255 * 128
    for i, (xv, off, wv) in enumerate([(127, 128, -128), (-128, -127, -128), (127, 128, 127)]):
        c_in, c_out = 300, 8
        x = np.full((1, 2, 3, c_in), xv, np.int64)
        filt = np.full((c_out, 1, 1, c_in), wv, np.int64)
        filt[1::2] = -filt[1::2] - (wv == -128)      # the packed pairs' high halves: other sign
        m, s = np.full(c_out, 1 << 30), np.full(c_out, -20)
        want = R.convolve_s8(x, filt, None, input_offset=off, output_offset=0, multipliers=m,
                             shifts=s, out_hw=(2, 3))
        params = [1, 2, 3, c_in, c_out, 1, 1, c_in, 2, 3, 1, 1, 0, 0, 1, 1, off, 0, -128,
                  127, 0, 1]
        batch.add(CONV, params, x, filt, want, f"pointwise extreme {i}", None, m, s)
    assert batch.run() == 93


def test_depthwise_full_windows(build):
    """Depthwise convolutions with many positions whose taps are all inside the input (those
    start from bias + input_offset * filter sum with scratch) next to padded ones; channel
    counts not a multiple of 4, channel multipliers, with and without scratch."""
    rng, batch = np.random.default_rng(20), Batch(build)
    for i in range(40):
        k, d = int(rng.choice([1, 3, 3, 5])), int(rng.choice([1, 1, 2]))
        s_, pad = int(rng.choice([1, 1, 2])), int(rng.integers(0, (k - 1) * d + 1))
        h, w = int(rng.integers(k * d, 14)), int(rng.integers(k * d, 14))
        oh = (h + 2 * pad - (k - 1) * d - 1) // s_ + 1
        ow = (w + 2 * pad - (k - 1) * d - 1) // s_ + 1
        n, c_in = int(rng.integers(1, 3)), int(rng.integers(1, 14))
        ch_mult = 1 if i % 4 else int(rng.choice([2, 3]))
        c_out = c_in * ch_mult
        small = rng.random() < 0.3
        x, filt = i8(rng, (n, h, w, c_in), small), i8(rng, (1, k, k, c_out), small)
        bias = rand_bias(rng, c_out, 5000, small)
        in_off, out_off = offsets(rng, small)
        m, sh = multipliers(rng, c_out, acc_std(k * k, in_off, small=small))
        lo, hi = activation(rng, out_off)
        want = R.depthwise_conv_s8(x, filt, bias, ch_mult=ch_mult, input_offset=in_off,
                                   output_offset=out_off, multipliers=m, shifts=sh,
                                   stride=(s_, s_), padding=(pad, pad), dilation=(d, d),
                                   out_hw=(oh, ow), act_min=lo, act_max=hi)
        params = [n, h, w, c_in, c_out, k, k, 1, oh, ow, s_, s_, pad, pad, d, d,
                  in_off, out_off, lo, hi, ch_mult, [1, 1, 0, 2][i % 4]]
        batch.add(DWCONV, params, x, filt, want, f"dw full {i} {params}", bias, m, sh)
    assert batch.run() == 40


def test_get_buffer_size(build):
    """The scratch sizes: a pointwise convolution packs four filters into two words per input
    channel when there are at least 4 pixels, 16 input channels and 4 output channels (and
    the input offset allows a chunk); a depthwise convolution with ch_mult 1 keeps one word
    per channel; nothing else needs scratch."""
    batch = Batch(build)
    cases = [  # n h w c_in c_out kh kw c_f oh ow stride pad in_off ch_mult -> conv, dw
        ((1, 2, 2, 16, 4, 1, 1, 16, 2, 2, 1, 0, 128, 1), (128, 16)),
        ((1, 5, 5, 64, 64, 1, 1, 64, 5, 5, 1, 0, -3, 1), (512, 256)),
        ((4, 1, 1, 300, 12, 1, 1, 300, 1, 1, 1, 0, 0, 2), (2400, 0)),
        ((1, 1, 3, 64, 64, 1, 1, 64, 1, 3, 1, 0, 0, 1), (0, 256)),     # 3 pixels
        ((1, 4, 4, 15, 8, 1, 1, 15, 4, 4, 1, 0, 0, 1), (0, 32)),       # 15 channels
        ((1, 4, 4, 32, 3, 1, 1, 32, 4, 4, 1, 0, 0, 3), (0, 0)),        # 3 output channels
        ((1, 4, 4, 32, 8, 1, 1, 32, 4, 4, 1, 0, 40000, 1), (0, 32)),   # no chunk fits
        ((1, 4, 4, 32, 8, 1, 1, 32, 2, 2, 2, 0, 0, 1), (0, 32)),       # strided
        ((1, 4, 4, 32, 8, 3, 3, 32, 4, 4, 1, 1, 0, 1), (0, 32)),       # 3x3
        ((1, 4, 4, 32, 8, 1, 1, 16, 4, 4, 1, 0, 0, 1), (0, 32)),       # two groups
    ]
    for i, ((n, h, w, ci, co, kh, kw, cf, oh, ow, st, pad, off, cm), want) in enumerate(cases):
        params = [n, h, w, ci, co, kh, kw, cf, oh, ow, st, st, pad, pad, 1, 1, off, 0, -128,
                  127, cm, 0]
        batch.add(BUFSIZE, params, np.zeros(0, np.int64), np.zeros(0, np.int64),
                  np.array(want), f"buffer sizes {i}")
    assert batch.run() == len(cases)


def test_fully_connected_s8_and_per_channel(build):
    rng, batch = np.random.default_rng(13), Batch(build)
    for i in range(80):
        per_channel = i % 2
        nb, depth, c_out = (int(v) for v in rng.integers((1, 1, 1), (4, 70, 14)))
        small = rng.random() < 0.3
        x, filt = i8(rng, (nb, depth), small), i8(rng, (c_out, depth), small)
        bias = rand_bias(rng, c_out, 20000, small)
        in_off, out_off = offsets(rng, small)
        w_off = 0 if rng.random() < 0.7 else offsets(rng, small)[0]
        m, s = multipliers(rng, c_out if per_channel else 1, acc_std(depth, in_off, w_off, small))
        lo, hi = activation(rng, out_off)
        want = R.fully_connected_s8(x, filt, bias, input_offset=in_off, filter_offset=w_off,
                                    output_offset=out_off, multiplier=m if per_channel else m[0],
                                    shift=s if per_channel else s[0], act_min=lo, act_max=hi)
        params = [nb, depth, c_out, in_off, w_off, out_off, lo, hi, per_channel]
        batch.add(FC, params, x, filt, want, f"fc{i} {params}", bias, m, s)
    assert batch.run() == 80
