"""QConvBits (edgecc/ir/lowbit.py: a 2-D convolution of bit-plane codes) on AVX2, generated
per layer with the shapes as constants and the weights repacked at compile time in read order
(the same flash bytes as the planes: [M/8 vectors][steps][8 channels][4 bytes], zero past K
and past M; 3-bit weights take 4 bits each). Every QConvBits node of test_lowbit_kernels runs
here; the portable kernel only takes what the preconditions below refuse.

Before (generic/qconv_bits.c.j2, the reference), per output pixel and channel m, over the taps
inside the input:  k-bit  acc = sum_ij c_i c_j 2^(i+j) popcount(x_i AND w_j),  binary  acc =
sum (C - 2 popcount(x XOR w)),  k-bit x, -1/+1 w  acc = sum x w;  then int8 NCHW or codes
clamp(requant(acc + b) + z_y, lo, hi), or for a binary output the sign of acc + b (+1 for 0).

Binary x and w (templates/x86_qconv_bits.c.j2).  Per chunk of output pixels, each pixel's
patch (KH x KW taps x CB bytes = K, 0 up to K4, a multiple of 4) split into its low and high
nibbles, one byte each, taps outside the input written 0x80.  Per block of NV vectors of 8
channels (their weights split the same way once per chunk) and PB pixels, each step of 4
bytes broadcasts a pixel's nibbles (vpbroadcastd) and adds
    lut[xlo ^ wlo] + lut[xhi ^ whi]  (vpshufb, lut = popcount of a nibble)
into byte accumulators: popcount(x XOR w) per byte, 6 operations per 32 bytes.  vpshufb gives
0 for an index with bit 7 set, so a tap outside the input (0x80 ^ w, w < 16) adds nothing
without a mask, and the bytes past K are 0 in both operands (lut[0] = 0).  A byte takes at
most 8 per step, so every 31 steps (248 < 256) the four bytes of each channel are summed into
its int32 lane (vpmaddubsw, vpmaddwd by 1).  s = C taps - 2 popcount, taps the pixel's taps
inside the input: exactly the reference's acc without b.

k-bit x (templates/x86_qconv_bits_rows.c.j2), by bytes.  u = x + OFFX is in [0, 2^XB) (OFFX =
2^(XB-1) for a signed x: two's complement with the top bit flipped, else 0), so
    acc = sum w u - OFFX sum w = s + fold,   fold = b - OFFX sum_k w[m][k]  (compile time)
where a tap outside the input reads u = OFFX (x = 0), adding nothing as in the reference.  The
input rows an output row reads are unpacked once per image (bits -> bytes, 32 channels by one
vpshufb + vpcmpeqb per plane) into a ring of (KH - 1) DH + 1 rows: PL padding pixels, W pixels
and padding/slack of u = OFFX (a row outside the input: a row of OFFX).  A run is the KW x C
bytes of one kernel row (dilation 1; else each tap's C bytes), read in place at 4-byte steps
(vpbroadcastd); its weights are 0 past the run, so the bytes read past it add 0.  The weights
are stored as F-bit fields n (F = 1, 2, 4 for 1, 2, 3-4 bits; G = 8 / F steps per byte),
w = n - OFFW (OFFW = 2^(WB-1) for signed weights), -1/+1 weights as their bit, w = 2 n - 1.
Per block of NV vectors, a run's weights are unpacked to bytes once per output row (vpsrlw,
vpand, vpsubb; -1/+1 weights: the bytes past the run cleared), then each step of PB pixels x NV
vectors is vpmaddubsw (u unsigned, w signed: |pair| <= 2 (2^XB - 1) max|w| <= 2 x 15 x 15 =
450, far from its int16 saturation) added into int16 lanes, which take at most 32767 / PAIR
steps before vpmaddwd by 1 adds them into the row's int32 sums (every sum exact).  When a
block's run does not fit the stack, the fields are unpacked in the loop instead.  (Both
templates write each stretch between two widenings as its own loop: GCC then keeps every
accumulator in a register, where one loop over the stretches spilled one to the stack.)

Output (templates/x86_qconv_bits_out.c.j2), per vector of 8 channels (lanes past M get no
bits).  int8 and codes of 3-4 bits: int8_conv's requantization records (bias field = fold) and
x86_qhelpers' edgecc_x86_rq (bit-exact with edgecc_requantize), then int8 NCHW stores or the
code's planes (bit q of each lane to a byte: vpslld + vmovmskps).  Codes of at most 3 levels
above lo: thresholds.  requant(fold + s) is non-decreasing in s (for M0 >= 0 each step of
edgecc_requantize is: the saturating shift, SRDHM = floor((a M0 + 2^30) / 2^31) (int8_conv.py),
RDBP), so the s reaching each level v are those above th_v, found at compile time by bisection
on the numpy model over |s| <= SPAN (the largest |s| of any input); code = lo + the levels
reached (vpcmpgtd).  Binary output: the sign of fold + s, i.e. s > -fold - 1.

Preconditions (else None: the portable kernel): |fold| + SPAN < 2^31 (and 2 C KH KW < 2^31), so
every int32 sum is exact; a requantization int8_conv.requant_records takes (|shift| <= 31,
M0 >= 0); binary: a block's split weights within SPLIT_BYTES; k-bit: the ring, a run's weights
and a row's sums within STACK_BYTES (-1/+1 weights: with the unpacked run).
Measured (bench/lowbit.py, x86-avx2, against edgecc's int8 AVX2 kernel on the same layer):
w1a1 about 6x faster, w2a2 and w4a4 about 2x (vpmaddubsw's 32 products per instruction
against vpmaddwd's 16: the bound of this method).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir.lowbit import unpack
from ...ir.ops.lowbit_ops import code
from ...ir.quant import requantize
from ..generic.int8 import requant_tables
from ..generic.lowbit import conv_bits_context
from ..kernels import Kernel, kernel
from .int8_conv import requant_records

COMMON = ("x86_common.c.j2", "x86_qhelpers.c.j2", "x86_qconv_bits_helpers.c.j2")
LIMIT = 2**31
PATCH_BYTES = 16384   # binary: a chunk's patches as nibbles (low and high bytes) on the stack
BIN_BLOCKS = ((3, 2), (2, 4), (1, 8))  # binary: (NV vectors of 8 channels, PB pixels) by preference
SPLIT_BYTES = 32768   # binary: a block's weights split into nibbles (stack)
ROW_CHOICES = ((True, 4, 2), (False, 2, None), (True, 1, 4))  # k-bit: (weights unpacked per
ROW_PBS = (4, 7, 5, 6)  # run, NV, PB) by preference; PB None: the best of ROW_PBS for OW
STACK_BYTES = 65536   # k-bit: the ring of byte rows, a run's unpacked weights and a row's sums
FIELD_BITS = {1: 1, 2: 2, 3: 4, 4: 4}  # weight bits -> field bits F


def _blocks(mv: int, nv: int):
    return dict(NV=nv, NBF=mv // nv, NVR=mv % nv)


def thresholds(fold, span, mult, shift, levels):
    """int64 [m, levels]: th with s > th exactly when requant(fold + s) >= level, for every
    |s| <= span (bisection on the non-decreasing numpy model)."""
    th = np.zeros((len(fold), len(levels)), np.int64)
    for j, level in enumerate(levels):
        a, b = -span.astype(np.int64), span.astype(np.int64) + 1  # the first s reaching it
        while np.any(a < b):
            open_ = a < b
            mid = (a + b) // 2
            ok = requantize(fold + mid, mult, shift) >= level
            b = np.where(open_ & ok, mid, b)
            a = np.where(open_ & ~ok, mid + 1, a)
        th[:, j] = a - 1
    return th


def output_plan(c, types, fold, span, worst):
    """(context, tables) of the output: thresholds or requantization records; None when the
    requantization is outside the kernels' range."""
    x_t, w_t, y_t = types
    m = c["M"]
    mv = -(-m // 8)
    if np.any(np.abs(fold) + span >= LIMIT):
        return None
    ctx = dict(MV=mv, LAST_KEEP=(1 << (m - 8 * (mv - 1))) - 1, NT=0, CODE_LO=0, RQ_MODE=0,
               RQ_LO=0, RQ_HI=0, RQ_ZY=0)
    lo, hi = c["lo"], c["hi"]
    if c["y_binary"] or (c["y_packed"] and 1 <= hi - lo <= 3):
        levels = [0] if c["y_binary"] else list(range(lo + 1, hi + 1))
        th = np.zeros((8 * mv, len(levels)), np.int64)
        if c["y_binary"]:  # the sign of acc = fold + s: no requantization
            th[:m, 0] = -fold - 1
        else:
            tabs = requant_tables(x_t, w_t, y_t, m)
            mult, shift = tabs["multiplier"].astype(np.int64), tabs["shift"].astype(np.int64)
            if mult.min(initial=0) < 0:
                return None
            th[:m] = thresholds(fold, span, mult, shift, levels)
        table = th.reshape(mv, 8, len(levels)).transpose(0, 2, 1).reshape(-1)
        ctx.update(THRESH=True, NT=len(levels), CODE_LO=lo)
        return ctx, {"th": table.astype(np.int32)}
    lanes = [i if i < m else -1 for i in range(8 * mv)]
    found = requant_records(x_t, w_t, y_t, fold, lanes, worst)
    if found is None:
        return None
    zy = c["out_offset"]
    off = 0 if found[1] == 2 else zy
    ctx.update(THRESH=False, RQ_MODE=found[1], RQ_LO=lo - off, RQ_HI=hi - off, RQ_ZY=zy)
    return ctx, {"rq": found[0]}


def geometry(c, node):
    a = node.attrs
    g = dict(NPIX=c["N"] * c["OH"] * c["OW"], SH=a.strides[0], SW=a.strides[1],
             DH=a.dilations[0], DW=a.dilations[1], PT=a.pads[0], PL=a.pads[1], T=c["KH"] * c["KW"])
    ih = [oh * g["SH"] - g["PT"] + kh * g["DH"] for oh in range(c["OH"]) for kh in range(c["KH"])]
    iw = [ow * g["SW"] - g["PL"] + kw * g["DW"] for ow in range(c["OW"]) for kw in range(c["KW"])]
    g.update(PADROW=min(ih) < 0 or max(ih) >= c["H"],
             PADDED=min(ih) < 0 or max(ih) >= c["H"] or min(iw) < 0 or max(iw) >= c["W"])
    return g


def binary_plan(c, g, wp, bias):
    """XOR + popcount on bit patches: (context, tables, fold, span, worst)."""
    m, cb, t = c["M"], c["CB"], g["T"]
    k = t * cb
    k4 = -(-k // 4) * 4
    mv = -(-m // 8)
    fits = [b for b in BIN_BLOCKS if b[0] * (k4 // 4) * 64 <= SPLIT_BYTES]
    if not fits:
        return None
    nv, pb = fits[0]
    span = np.full(m, c["C"] * t, np.int64)
    if 2 * c["C"] * t >= LIMIT:
        return None
    w = np.zeros((8 * mv, k4), np.uint8)
    w[:m, :k] = wp.reshape(m, k)
    w = w.reshape(mv, 8, k4 // 4, 4).transpose(0, 2, 1, 3).reshape(-1)
    whole = -(-g["NPIX"] // pb) * pb
    pc = max(pb, min(PATCH_BYTES // (2 * k4), whole) // pb * pb)
    ctx = dict(K=k, K4=k4, K32=-(-k4 // 32) * 32, KS=k4 // 4, PB=pb, PC=pc, **_blocks(mv, nv))
    return ctx, {"w": w}, bias, span, np.abs(bias) + span


def rows_plan(c, g, values, bias, xc, wc):
    """vpmaddubsw on byte rows: (context, tables, fold, span, worst)."""
    m, ch, kh, kw = c["M"], c["C"], c["KH"], c["KW"]
    mv = -(-m // 8)
    offx = 1 << (xc.bits - 1) if xc.signed else 0
    offw = 1 << (wc.bits - 1) if wc.signed or wc.binary else 0
    scale = 2 if wc.binary else 1   # w = scale n - offw for a field n (binary: n = the bit)
    f = FIELD_BITS[wc.bits]
    gs = 8 // f
    segw = 1 if g["DW"] == 1 else kw            # runs per kernel row
    run = kw * ch if segw == 1 else ch
    nseg = kh * segw
    sr = -(-run // 4)                            # steps of 4 bytes per run
    sg = -(-sr // gs)                            # groups of G steps (bytes of fields) per run
    ss = sg * gs
    ring = (kh - 1) * g["DH"] + 1
    for pre, nv, pb in ROW_CHOICES:  # the first whose stack fits
        if pb is None:  # the fewest pixels past OW, then the first in ROW_PBS
            pb = min(ROW_PBS, key=lambda b: (-(-c["OW"] // b) * b, ROW_PBS.index(b)))
        owb = -(-c["OW"] // pb) * pb
        reads = (owb - 1) * g["SW"] * ch + (segw - 1) * g["DW"] * ch + 4 * ss
        writes = (g["PL"] + c["W"] - 1) * ch + 32 * -(-c["CB"] // 4)
        rb = -(-max(reads, writes) // 32) * 32
        stack = (ring + g["PADROW"]) * rb + (nv * sr * 32 if pre else 0) + owb * nv * 32
        if stack <= STACK_BYTES and (pre or not wc.binary):  # binary: no 0 weight, see above
            break
    else:
        return None
    umax = (1 << xc.bits) - 1
    wabs = max(abs(v) for v in wc.levels)
    pair = 2 * umax * wabs
    fg = max(1, 32767 // pair // gs)
    vals = np.zeros((8 * mv, nseg, 4 * ss), np.int64)
    vals[:m, :, :run] = values.reshape(m, nseg, run)
    fields = ((vals + offw) // scale).reshape(8 * mv, nseg, sg, gs, 4)
    packed = sum(fields[:, :, :, i, :] << (f * i) for i in range(gs))   # [8 mv, nseg, sg, 4]
    w = packed.reshape(mv, 8, nseg * sg, 4).transpose(0, 2, 1, 3).reshape(-1).astype(np.uint8)
    sums = values.reshape(m, -1)
    span = umax * np.abs(sums).sum(axis=1)
    fold = bias - offx * sums.sum(axis=1)
    xabs = max(abs(v) for v in xc.levels)
    ctx = dict(OFFX=offx, OFFW=offw, WSCALE=scale, F=f, G=gs, RUN=run, SEGW=segw, NSEG=nseg,
               SG=sg, SR=sr, FG=fg, PAIR=pair, WSTRIDE=nseg * sg * 32, PB=pb, R=ring, RB=rb,
               PRE=pre, OWB=owb, **_blocks(mv, nv))
    return ctx, {"w": w}, fold, span, np.abs(bias) + xabs * np.abs(sums).sum(axis=1)


@kernel("QConvBits")
def qconv_bits(ctx, node) -> Optional[Kernel]:
    c, _, _ = conv_bits_context(ctx, node)
    graph = ctx.graph
    xn, wn, yn = node.inputs[0], node.inputs[1], node.outputs[0]
    types = tuple(graph.types[n] for n in (xn, wn, yn))
    xc, wc = code(types[0]), code(types[1])
    bn = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    m = c["M"]
    bias = (graph.constants[bn].astype(np.int64).reshape(m) if bn else np.zeros(m, np.int64))
    wp = np.asarray(graph.constants[wn], np.uint8)
    g = geometry(c, node)
    if c["binary"]:
        plan = binary_plan(c, g, wp, bias)
        template = "x86_qconv_bits.c.j2"
    else:
        values = unpack(wp, wc, c["C"])  # [M, KH, KW, C]
        plan = rows_plan(c, g, values, bias, xc, wc)
        template = "x86_qconv_bits_rows.c.j2"
    if plan is None:
        return None
    context, tables, fold, span, worst = plan
    found = output_plan(c, types, fold, span, worst)
    if found is None:
        return None
    tables.update(found[1])
    return Kernel(template, {**c, **g, **context, **found[0]}, [xn, yn], tables=tables,
                  needs=COMMON)
