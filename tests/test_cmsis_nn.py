"""edgecc's CMSIS-NN-compatible runtime (edgecc/runtime_c/cmsis_nn/) against the numpy model of
the documented semantics (edgecc/backends/cmsis/cmsis_reference.py), bit for bit.

The runtime and a small C driver (DRIVER below) are built once with gcc and ASan/UBSan. Each
test appends randomized cases (fixed seeds) to one request file: per case an op code, its int32
parameters and its arrays, allocated by the driver at their exact sizes so that the sanitizers
see any access outside them. The driver runs every case and writes back the status and the
output, which must equal the reference exactly. Cases cover padding, stride, dilation, groups,
channel multipliers, activation clamps, odd sizes, non-zero filter offsets, bias or none, and
multipliers of exactly 2^30 so that requantization lands on exact halves; softmax's
fixed-point exp and reciprocal and the requantization helper are also compared at full 32-bit
precision. The convolutions run with exactly their *_get_buffer_size() bytes of scratch
(allocated at that size, so ASan sees any access past it), with none, or with a misaligned
buffer (both computed without scratch), and their fast paths have cases of their own:
pointwise convolutions (packed filters; channel counts around the packing's thresholds and
chunk sizes, its largest partial sums) and depthwise ones with many fully inside positions.
The reference itself is cross-checked against edgecc's own NCHW int8 models (ir/quant_ref.py)
and the fixed-point softmax against float. Every runtime file must also compile warning-free
with arm-none-eabi-gcc for Cortex-M4, M7 and M55 (skipped without that compiler).
"""
import math
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import edgecc
from edgecc.backends.cmsis import cmsis_reference as R
from edgecc.ir import quant_ref
from edgecc.ir.quant import quantize_multiplier, requantize

RUNTIME = Path(edgecc.__file__).parent / "runtime_c" / "cmsis_nn"
SOURCES = sorted(RUNTIME.glob("*.c"))
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
CONV, DWCONV, FC, AVGPOOL, MAXPOOL, SOFTMAX, ADD, MUL, EXP, RECIP, REQUANT, BUFSIZE = range(1, 13)

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "arm_nnfunctions.h"
#include "arm_nn_requantize.h"

static int32_t *req; static long pos, len;
static int32_t next(void) {
    if (pos >= len) { fputs("short request\n", stderr); exit(2); }
    return req[pos++];
}
static int32_t *get32(int32_t *n) {
    int32_t i, *p; *n = next(); p = (int32_t *)malloc(*n ? (size_t)*n * 4 : 1);
    for (i = 0; i < *n; i++) p[i] = next();
    return p;
}
static int8_t *get8(int32_t *n) {
    int32_t i; int8_t *p; *n = next(); p = (int8_t *)malloc(*n ? (size_t)*n : 1);
    for (i = 0; i < *n; i++) p[i] = (int8_t)next();
    return p;
}
static void reply(int32_t status, const int8_t *out, const int32_t *out32, int32_t n) {
    int32_t i, v; fwrite(&status, 4, 1, stdout); fwrite(&n, 4, 1, stdout);
    for (i = 0; i < n; i++) { v = out32 ? out32[i] : out[i]; fwrite(&v, 4, 1, stdout); }
}
#define DIMS(n_, h_, w_, c_) { .n = (n_), .h = (h_), .w = (w_), .c = (c_) }

int main(int argc, char **argv) {
    FILE *f = fopen(argv[argc - 1], "rb");
    fseek(f, 0, SEEK_END); len = ftell(f) / 4; fseek(f, 0, SEEK_SET);
    req = (int32_t *)malloc((size_t)len * 4);
    if (fread(req, 4, (size_t)len, f) != (size_t)len) return 3;
    fclose(f);
    while (pos < len) {
        const int32_t op = next(); int32_t p[24], np_ = next(), i, na, nb, nc, nm, ns, nout;
        int32_t status = 0, *bias, *mult, *shift; int8_t *a, *b = 0, *out;
        for (i = 0; i < 24; i++) p[i] = 0;
        for (i = 0; i < np_; i++) p[i] = next();
        a = get8(&na);
        if (op <= FC_OP || op == ADD_OP || op == MUL_OP || op == BUFSIZE_OP) b = get8(&nb);
        bias = get32(&nc); mult = get32(&nm); shift = get32(&ns);
        nout = next(); out = (int8_t *)malloc(nout ? (size_t)nout : 1);
        for (i = 0; i < nout; i++) out[i] = 0x55;
        if (op == EXP_OP || op == RECIP_OP || op == REQUANT_OP) { /* helpers on int32 arrays */
            for (i = 0; i < nc; i++)
                bias[i] = op == EXP_OP ? edgecc_nn_exp_on_negative_values(bias[i])
                        : op == RECIP_OP ? edgecc_nn_one_over_one_plus_x(bias[i])
                        : edgecc_nn_requantize(bias[i], mult[i], shift[i]);
            reply(0, out, bias, nc);
            free(a); free(bias); free(mult); free(shift); free(out);
            continue;
        }
        if (op == CONV_OP || op == DWCONV_OP || op == BUFSIZE_OP) {
            /* n h w c_in | c_out kh kw c_filter | oh ow | stride pad dil (h, w) | offsets | act
               | ch_mult | scratch: 0 none, 1 exactly *_get_buffer_size() bytes (malloc: ASan
               sees any access past them), 2 those bytes misaligned (unusable) */
            const cmsis_nn_dims in = DIMS(p[0], p[1], p[2], p[3]);
            const cmsis_nn_dims out_d = DIMS(p[0], p[8], p[9], p[4]);
            const cmsis_nn_dims bias_d = DIMS(1, 1, 1, p[4]);
            const cmsis_nn_dims fd = DIMS(p[4], p[5], p[6], p[7]), dw_fd = DIMS(1, p[5], p[6], p[4]);
            const cmsis_nn_per_channel_quant_params q = { mult, shift };
            const cmsis_nn_conv_params cp = { p[16], p[17], { p[11], p[10] }, { p[13], p[12] },
                                              { p[15], p[14] }, { p[18], p[19] } };
            const cmsis_nn_dw_conv_params dp = { p[16], p[17], p[20], { p[11], p[10] },
                                                 { p[13], p[12] }, { p[15], p[14] },
                                                 { p[18], p[19] } };
            int32_t sizes[2];
            char *scratch = 0;
            cmsis_nn_context ctx = { 0, 0 };
            sizes[0] = arm_convolve_wrapper_s8_get_buffer_size(&cp, &in, &fd, &out_d);
            sizes[1] = arm_depthwise_conv_wrapper_s8_get_buffer_size(&dp, &in, &dw_fd, &out_d);
            if (op == BUFSIZE_OP) {
                reply(0, out, sizes, 2);
                free(a); free(b); free(bias); free(mult); free(shift); free(out);
                continue;
            }
            ctx.size = sizes[op == DWCONV_OP];
            if (p[21] != 0 && ctx.size > 0) {
                scratch = (char *)malloc((size_t)ctx.size + (p[21] == 2 ? 1u : 0u));
                ctx.buf = scratch + (p[21] == 2 ? 1 : 0);
            }
            if (op == CONV_OP)
                status = arm_convolve_wrapper_s8(&ctx, &cp, &q, &in, a, &fd, b, &bias_d,
                                                 nc ? bias : 0, &out_d, out);
            else
                status = arm_depthwise_conv_wrapper_s8(&ctx, &dp, &q, &in, a, &dw_fd, b, &bias_d,
                                                       nc ? bias : 0, &out_d, out);
            free(scratch);
        } else if (op == FC_OP) {
            /* batches depth out_c | in_off filt_off out_off | act | per_channel */
            const cmsis_nn_dims in = DIMS(p[0], 1, 1, p[1]), fd = DIMS(p[1], 1, 1, p[2]);
            const cmsis_nn_dims bias_d = DIMS(1, 1, 1, p[2]), out_d = DIMS(p[0], 1, 1, p[2]);
            const cmsis_nn_fc_params fp = { p[3], p[4], p[5], { p[6], p[7] } };
            const cmsis_nn_context ctx = { 0, arm_fully_connected_s8_get_buffer_size(&fd) };
            if (ctx.size != 0) status = 99;
            else if (p[8]) {
                const cmsis_nn_per_channel_quant_params q = { mult, shift };
                status = arm_fully_connected_per_channel_s8(&ctx, &fp, &q, &in, a, &fd, b, &bias_d,
                                                            nc ? bias : 0, &out_d, out);
            } else {
                const cmsis_nn_per_tensor_quant_params q = { mult[0], shift[0] };
                status = arm_fully_connected_s8(&ctx, &fp, &q, &in, a, &fd, b, &bias_d,
                                                nc ? bias : 0, &out_d, out);
            }
        } else if (op == AVGPOOL_OP || op == MAXPOOL_OP) {
            /* n h w c | kh kw | oh ow | stride pad (h, w) | act */
            const cmsis_nn_dims in = DIMS(p[0], p[1], p[2], p[3]), fd = DIMS(1, p[4], p[5], 1);
            const cmsis_nn_dims out_d = DIMS(p[0], p[6], p[7], p[3]);
            const cmsis_nn_pool_params pp = { { p[9], p[8] }, { p[11], p[10] }, { p[12], p[13] } };
            const cmsis_nn_context ctx = { 0, arm_avgpool_s8_get_buffer_size(p[7], p[3]) };
            if (ctx.size != 0) status = 99;
            else if (op == AVGPOOL_OP) status = arm_avgpool_s8(&ctx, &pp, &in, a, &fd, &out_d, out);
            else status = arm_max_pool_s8(&ctx, &pp, &in, a, &fd, &out_d, out);
        } else if (op == SOFTMAX_OP) {
            arm_softmax_s8(a, p[0], p[1], p[2], p[3], p[4], out);
        } else if (op == ADD_OP) {
            status = arm_elementwise_add_s8(a, b, p[0], p[1], p[2], p[3], p[4], p[5], p[6], out,
                                            p[7], p[8], p[9], p[10], p[11], na);
        } else {
            status = arm_elementwise_mul_s8(a, b, p[0], p[1], out, p[2], p[3], p[4], p[5], p[6],
                                            na);
        }
        reply(status, out, 0, nout);
        free(a); free(b); free(bias); free(mult); free(shift); free(out);
    }
    free(req);
    return 0;
}
"""


class Batch:
    """Cases for one run of the driver; run() compares every output with its expectation."""

    def __init__(self, build_dir):
        self.build_dir, self.words, self.cases = build_dir, [], []

    def add(self, op, params, a, b, expected, label, bias=None, mult=(), shift=()):
        words = [op, len(params), *params, a.size, *a.ravel().tolist()]
        if b is not None:
            words += [b.size, *b.ravel().tolist()]
        for arr in (bias if bias is not None else [], mult, shift):
            arr = np.atleast_1d(np.asarray(arr, dtype=np.int64))
            words += [arr.size, *arr.tolist()]
        words.append(expected.size)
        self.words += [int(w) for w in words]
        self.cases.append((label, expected.ravel().astype(np.int64)))

    def run(self):
        req = self.build_dir / f"req{os.getpid()}_{id(self)}.bin"
        req.write_bytes(np.array(self.words, dtype="<i4").tobytes())
        res = subprocess.run([str(self.build_dir / "driver"), str(req)], capture_output=True)
        assert res.returncode == 0, res.stderr.decode()[-3000:]
        data = np.frombuffer(res.stdout, dtype="<i4")
        pos, bad = 0, []
        for label, want in self.cases:
            status, n = int(data[pos]), int(data[pos + 1])
            got = data[pos + 2:pos + 2 + n].astype(np.int64)
            pos += 2 + n
            if status != 0 or n != want.size or not np.array_equal(got, want):
                diff = int(np.sum(got != want)) if n == want.size else n
                bad.append(f"{label}: status {status}, {diff} of {want.size} differ")
        assert pos == data.size
        assert not bad, "\n".join(bad[:20])
        return len(self.cases)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmsis_nn")
    (d / "driver.c").write_text(DRIVER)
    ops = dict(CONV=CONV, DWCONV=DWCONV, FC=FC, AVGPOOL=AVGPOOL, MAXPOOL=MAXPOOL,
               SOFTMAX=SOFTMAX, ADD=ADD, MUL=MUL, EXP=EXP, RECIP=RECIP, REQUANT=REQUANT,
               BUFSIZE=BUFSIZE)
    cmd = ["gcc", *CFLAGS, "-O1", "-g", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", *(f"-D{k}_OP={v}" for k, v in ops.items()),
           f"-I{RUNTIME}", "-o", str(d / "driver"),
           str(d / "driver.c"), *map(str, SOURCES)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return d


# -- random parameters --------------------------------------------------------------------

def i8(rng, shape, small=False):
    """Random int8 values; within +-4 when small (small accumulators: the requantization then
    has little right shift, so its rounding of exact halves decides many outputs)."""
    r = 4 if small else 128
    return rng.integers(-r, r + 1 if small else 128, size=shape).astype(np.int64)


def multipliers(rng, n, acc_std):
    """(M0, shift) per channel spreading outputs over ~50 LSB; a third of them exactly 2^30
    (0.5 * 2^shift: requantization then lands on exact halves)."""
    pairs = [quantize_multiplier(50.0 / max(acc_std, 1.0) * 2.0 ** rng.uniform(-1.5, 1.5))
             for _ in range(n)]
    m = np.array([p[0] for p in pairs], dtype=np.int64)
    s = np.array([p[1] for p in pairs], dtype=np.int64)
    m = np.where(rng.random(n) < 0.35, 1 << 30, m)
    m = np.where(rng.random(n) < 0.05, 2**31 - 1, m)
    return m, s


def offsets(rng, small=False):
    """(input offset = -z_in, output offset = z_out); the input one within +-3 when small."""
    in_off = rng.integers(-3, 4) if small else rng.integers(-127, 129)
    return int(in_off), int(rng.integers(-128, 128))


def rand_bias(rng, n, r, small):
    """Random int32 bias (within +-r/100 when small), or none (NULL) one time in five."""
    if rng.random() < 0.2:
        return None
    r = r // 100 if small else r
    return rng.integers(-r, r + 1, n)


def activation(rng, out_offset):
    k = rng.integers(4)
    if k == 0:
        return -128, 127
    if k == 1:
        return max(out_offset, -128), 127                          # ReLU
    lo = int(rng.integers(-128, 60))
    return lo, int(rng.integers(lo, 128))


def geometry(rng, k, high=9, max_dil=3):
    """(in, k, stride, dilation, pad_begin, out) on one axis; the padding may be asymmetric."""
    while True:
        s, d = int(rng.integers(1, 4)), int(rng.integers(1, max_dil + 1))
        eff = (k - 1) * d + 1
        pb, pe = int(rng.integers(0, eff)), int(rng.integers(0, eff))
        size = int(rng.integers(1, high))
        span = size + pb + pe - eff
        if span >= 0:
            return size, s, d, pb, span // s + 1


def acc_std(taps, in_off, w_off=0, small=False):
    v = 2.6**2 if small else 74.0**2
    return math.sqrt(taps * (v + in_off**2) * (v + w_off**2))


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
