"""Shared harness of the CMSIS-NN runtime tests (test_cmsis_nn.py,
test_cmsis_nn_pool_elementwise.py).

edgecc's CMSIS-NN-compatible runtime (edgecc/runtime_c/cmsis_nn/) and a small C driver
(DRIVER below) are built with gcc and ASan/UBSan by build_driver(). Each test appends
randomized cases (fixed seeds) to one request file (a Batch): per case an op code, its int32
parameters and its arrays, allocated by the driver at their exact sizes so that the sanitizers
see any access outside them. The driver runs every case and writes back the status and the
output, which must equal the expectation (the numpy model of the documented semantics,
edgecc/backends/cmsis/cmsis_reference.py) exactly. The helpers below draw the random
parameters: int8 values, per-channel multipliers (a third of them exactly 2^30 so that
requantization lands on exact halves), offsets, biases, activation clamps and geometries.
"""
import math
import os
import subprocess
from pathlib import Path

import numpy as np

import edgecc
from edgecc.ir.quant import quantize_multiplier

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



def build_driver(tmp_path_factory):
    """Compiles DRIVER and the runtime with sanitizers; returns the build directory."""
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
