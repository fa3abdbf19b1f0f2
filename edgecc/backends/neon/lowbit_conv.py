"""QConvBits (bit-plane convolution, edgecc/ir/lowbit.py) on NEON, generated per layer: AND (or
XOR for binary operands) + CNT over 16-byte vectors, the plane pairs' counts combined in byte
lanes and pairwise-accumulated into 16-bit lanes, the output from per-channel thresholds (codes)
or the int8 requantization of int8_conv.py (neon_qhelpers.c.j2).

Streams.  For an output pixel p and a plane i of the input, the stream S_i(p) is the
concatenation over the KH x KW taps (row-major) of the tap's CB = ceil(C/8) bytes of plane i
(zeros for a tap outside the input), L = taps CB bytes, zero-padded to L8 (a multiple of 8);
the weights' streams W_j(m) likewise (plane j of output channel m). Then
  k-bit:  acc = sum_ij c_ij popcount(S_i(p) AND W_j(m))        (c_ij = c_i c_j, lowbit.py)
  k-bit input, binary weights:  acc = 2 D - X(p),  D = sum_i c_i popcount(S_i(p) AND W_0(m)),
          X(p) = sum_i c_i popcount(S_i(p)) (counted once per pixel block)
  binary: D = popcount(S_0(p) XOR W_0(m)),  acc = C taps - 2 D - adj(pattern(p), m)
where a padding tap (x bits 0) adds popcount(w_t) to D, and adj = sum over the pixel's padding
taps t of (C - 2 popcount(w[m][t])) takes it out again. The padding taps of a pixel depend on
its row class and column class only (``padding_patterns``; pattern 0: none), so adj is folded
at compile time into per-pattern thresholds (or int8 biases), tables [pattern][M'].

Layout ("half steps").  A half step h covers bytes 8h..8h+7 of every stream. A weight vector
holds two output channels, [W_j(2k)[8h..8h+7] | W_j(2k+1)[8h..8h+7]]: the weights are repacked
at compile time as [channel block][h][Q/2 channel pairs][plane j][16 bytes]. The inputs of a
block of P output pixels are packed once per block (amortised over all M channels) as
[h][pixel][plane i][16 bytes] with the 8 stream bytes twice, so one AND of the two gives both
channels' products and no lane is wasted whatever C is (up to 7 zero bytes per stream when
taps x CB % 8 != 0). Every load is an LD1 of up to four vectors with post-increment (the
EDGECC_BITS_OPAQUE barrier keeps GCC from turning them into base + offset, which LD1 lacks).
Flash: the table holds M' (M rounded up to Q) x WB x L8 bytes: the packed constant's
M x WB x taps x CB, plus that padding (none for the layers whose taps x CB % 8 == 0 and
M % Q == 0); the original constant is not emitted. Thresholds: levels x M' int16/int32 per
padding pattern (binary input), about what the portable kernel's requantization tables take.

Microkernel.  Per pixel block, channel block (Q channels, Q a multiple of 4) and half step: P
pixels x Q/2 channel pairs of 16-bit accumulators per group (below). For each (p, k) and group:
the pair counts n_ij = CNT(x_i AND w_j) (u8, <= 8) are combined in byte lanes as s = sum c n_ij
(first c = 1, then ADD/SUB or MLA/MLS by a constant vector), then UADALP (s unsigned) or SADALP
(s in int8) add byte pairs into the 16-bit lanes: lanes 0-3 channel 2k, 4-7 channel 2k+1. Per
16 bytes that is one AND + one CNT + one ADD/MLA/ADALP per plane pair, the floor of the
bit-plane method (w1a1: 3 instructions per 128 products; w2a2: 12). Groups (``groups``): the
pairs are split so that every group's combined byte (8 x the sum of its negative / positive c)
fits u8 (no c < 0) or int8, each with a common factor f (D = sum_g f_g D_g): w1a1 and w2a2
(unsigned x, signed w) need one group, w4a4 two. The first half step starts the accumulators
with UADDLP/SADDLP. Blocking (``blocking``): P, Q and whether the weights of a half step are
loaded at once or per channel pair minimise the estimated instructions per output with at most
30 vector registers live. GCC's first scheduling pass would hoist all the ANDs of a step and
spill accumulators, so the layer function is compiled without it (EDGECC_BITS_KERNEL, GCC only).

Exactness.  Every combined byte fits its u8/int8 range by construction; a 16-bit lane after h
half steps holds at most 2 h max|s| and the epilogue's first pairwise add doubles that, so h is
at most ``Hc`` = limit / (4 max|s|) (65535 unsigned, 32767 signed); a layer with more half
steps runs in chunks whose 32-bit sums add up on the stack. Epilogue per pixel pair and 4
channels: pairwise adds (ADDP) to one lane per (pixel, channel), int16 lanes [p: m0..m3 |
p+1: m0..m3] when every intermediate (and threshold) is within +-32766 and the output is
codes, else int32 lanes per pixel. Codes: requantization and clamp are monotone in acc, so
code = lo + #{k : acc >= T_k[m]} with thresholds T_k found at compile time by bisection on
edgecc.ir.quant.requantize (binary output: the sign of acc + b, T = -b); binary input compares
D <= floor((C taps - adj - T_k) / 2) instead (acc >= T_k <=> 2 D <= C taps - adj - T_k, D an
integer), one table per padding pattern. The codes go to a stack
buffer as [pixel pair][channel][p, p+1] bytes (TBL); their bit planes are then gathered 64
channels x 2 pixels at a time: CMTST, AND with the bit weights, ADDP of u16 lanes (byte of
pixel p + 256 x byte of pixel p+1: disjoint bits, no carry), XTN / SHRN and two 8-byte stores.
int8 (NCHW) output: the bias (binary: C taps - adj + b - 2 D), the requantization on 4 lanes,
clamp and per-byte stores.

Preconditions (``plan``; else the portable kernel runs): C <= 32767, at most 255 padding
patterns, the packed input block, codes and stream buffers within 32 KiB of stack, thresholds
within int32 and, for int8 outputs, the requantization ranges of int8_conv.requant_records.
"""
from __future__ import annotations

import numpy as np

from ...ir.ops.lowbit_ops import code
from ...ir.quant import requantize
from ..generic.lowbit import conv_bits_context
from ..kernels import Kernel, kernel
from .int8_conv import rq_mode

NEEDS = ("neon_common.c.j2", "neon_qhelpers.c.j2", "neon_qconv_bits_helpers.c.j2")
REGS = 30           # vector registers the microkernel may hold (accumulators, operands, temps)
MAX_STACK = 32768   # bytes of stack buffers
UNROLLED_COPIES = 160  # interior pixels: chunk copies written out up to this many per pixel


def _fits(pos: int, neg: int) -> bool:
    """A combined byte sum k n over counts n <= 8: u8 when no k < 0, else int8."""
    return 8 * pos <= 255 if neg == 0 else (8 * pos <= 127 and 8 * neg <= 128)


def groups(coef):
    """Split the plane pairs (i, j, c_ij) into groups: dicts f (the common factor), terms
    [(i, j, k)] with c_ij = f k (the first k = 1), pos/neg (sums of positive / negative k),
    unsigned (no k < 0). Pairs are taken by increasing |c|, each into the first group it
    divides and keeps in range."""
    pairs = sorted((abs(c), i, j, c) for i, row in enumerate(coef) for j, c in enumerate(row))
    out = []
    for _, i, j, c in pairs:
        for g in out:
            if c % g["f"] == 0:
                k = c // g["f"]
                pos, neg = g["pos"] + max(k, 0), g["neg"] + max(-k, 0)
                if _fits(pos, neg):
                    g["terms"].append((i, j, k))
                    g["pos"], g["neg"] = pos, neg
                    break
        else:
            out.append(dict(f=c, terms=[(i, j, 1)], pos=1, neg=0))
    for g in out:
        g["unsigned"] = g["neg"] == 0
        g["maxabs"] = 8 * max(g["pos"], g["neg"])
    return out


def blocking(xb, wb, gs, nconst, npix, m):
    """(P, Q2, weights loaded per channel pair) with the fewest estimated instructions per
    output: P pixels (even) x Q2 channel pairs of accumulators per group."""
    pairs = sum(len(g["terms"]) for g in gs)
    best = None
    for q2 in (2, 4, 6, 8):
        for per_m in (False, True):
            for p in (2, 4, 6, 8):
                regs = len(gs) * p * q2 + xb * p + (wb if per_m else wb * q2) + nconst + 3
                if regs > REGS:
                    continue
                loads = -(-xb * p // 4) + (q2 * -(-wb // 4) if per_m else -(-wb * q2 // 4))
                cost = (3 * pairs * p * q2 + loads + 2) / (p * q2)
                waste = (-(-npix // p) * p / npix) * (-(-m // (2 * q2)) * 2 * q2 / m)
                key = (cost * waste, -p * q2, per_m)
                if best is None or key < best[0]:
                    best = (key, p, q2, per_m)
    return best[1:] if best else None


def loads(count: int, name: str):
    """Loads of ``count`` consecutive 16-byte vectors, four per LD1: [dict(var, n, type, fn)]
    and the C expression of each vector."""
    out, refs = [], []
    for first in range(0, count, 4):
        n = min(4, count - first)
        var = f"{name}{first}"
        out.append(dict(var=var, n=n, type=f"uint8x16{'x%d' % n if n > 1 else ''}_t",
                        fn=f"vld1q_u8_x{n}" if n > 1 else "vld1q_u8"))
        refs += [f"{var}.val[{k}]" if n > 1 else var for k in range(n)]
    return out, refs


def thresholds(bias, mult, shift, lo, levels, bound):
    """int64 [levels, M]: T_k = the least acc in [-bound, bound] with
    clamp(requantize(acc + b)) >= lo + k, bound + 1 when none (requantization and clamp are
    monotone in acc)."""
    m = len(bias)
    out = np.empty((levels, m), np.int64)
    for k in range(1, levels + 1):
        target = lo + k
        low = np.full(m, -bound, np.int64)       # the answer is in (low, high] ...
        high = np.full(m, bound + 1, np.int64)   # ... unless it is -bound itself
        while np.any(high - low > 1):
            mid = (low + high) // 2              # <= bound
            good = requantize(mid + bias, mult, shift) >= target
            high, low = np.where(good, mid, high), np.where(good, low, mid)
        first = requantize(-bound + bias, mult, shift) >= target
        out[k - 1] = np.where(first, -bound, high)
    return out


def quads(per_channel: np.ndarray, pairs: bool) -> np.ndarray:
    """[..., M'] -> [M' / 4][..., 4 lanes] (channels 4u..4u+3), or with ``pairs`` 8 lanes: the
    4 channels twice (pixels p, p+1)."""
    v = per_channel.reshape(per_channel.shape[:-1] + (-1, 4))
    if pairs:
        v = np.concatenate([v, v], axis=-1)
    return np.moveaxis(v, -2, 0)


def padding_patterns(c):
    """Binary layers with padding: (row pattern [OH], column pattern [OW], the padding taps of
    each pattern rpat + cpat (pattern 0: none)) of the output pixels."""
    (s0, s1), (d0, d1), (p0, p1) = c["S"], c["D"], c["P"]

    def outside(n_out, stride, dil, pad, size, k):
        return [frozenset(t for t in range(k) if not 0 <= o * stride - pad + t * dil < size)
                for o in range(n_out)]
    rows = outside(c["OH"], s0, d0, p0, c["H"], c["KH"])
    cols = outside(c["OW"], s1, d1, p1, c["W"], c["KW"])
    rset = [frozenset()] + sorted(set(rows) - {frozenset()}, key=sorted)
    cset = [frozenset()] + sorted(set(cols) - {frozenset()}, key=sorted)
    taps = [[kh * c["KW"] + kw for kh in range(c["KH"]) for kw in range(c["KW"])
             if kh in r or kw in cc] for r in rset for cc in cset]
    return ([rset.index(r) * len(cset) for r in rows], [cset.index(cc) for cc in cols], taps)


def plan(ctx, node):
    """(template context, args, tables) of a QConvBits the NEON kernel takes, else None."""
    c, _, rq = conv_bits_context(ctx, node)
    g = ctx.graph
    x_t, w_t, y_t = (g.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    h_, w_, ch, m = c["H"], c["W"], c["C"], c["M"]
    kh, kw, xb, wb, cb = c["KH"], c["KW"], c["XB"], c["WB"], c["CB"]
    taps, length = kh * kw, kh * kw * cb
    hsteps = -(-length // 8)
    l8 = 8 * hsteps
    binary, w_binary = c["binary"], c.get("w_binary", False)
    if ch > 32767:
        return None
    gs = ([dict(f=1, terms=[(0, 0, 1)], pos=1, neg=0, unsigned=True, maxabs=8)] if binary
          else groups(c["coef"]))
    consts = sorted({abs(k) for gr in gs for _, _, k in gr["terms"] if abs(k) > 1})
    npix = c["N"] * c["OH"] * c["OW"]
    found = blocking(xb, wb, gs, len(consts), npix, m)
    if found is None:
        return None
    pb, q2, per_m = found
    q = 2 * q2
    mq, mp8 = -(-m // q) * q, -(-m // 8) * 8
    hc = min((65535 if gr["unsigned"] else 32767) // (4 * gr["maxabs"]) for gr in gs)
    nch = -(-hsteps // hc)
    stack = hsteps * pb * xb * 16 + pb * mp8 + (xb * l8 if cb % 8 else 0) + 4 * pb * q * nch
    if stack > MAX_STACK:
        return None

    # the weights' streams as [M'/Q][h][Q/2 channel pairs][WB][2 channels][8 bytes]
    wp = np.asarray(g.constants[node.inputs[1]], np.uint8).reshape(m, taps, wb, cb)
    streams = np.zeros((mq, wb, l8), np.uint8)
    streams[:m, :, :length] = wp.transpose(0, 2, 1, 3).reshape(m, wb, length)
    wtab = streams.reshape(mq // q, q2, 2, wb, hsteps, 8).transpose(0, 4, 1, 3, 2, 5)
    tables = dict(w=np.ascontiguousarray(wtab).reshape(-1))

    xcode, wcode = code(x_t), code(w_t)
    xmost = max(abs(v) for v in xcode.levels)
    if binary:
        bound = ch * taps
        loose = max(bound, l8 * 8)
    elif w_binary:   # acc = 2 D - X(p), X(p) = sum_i c_i popcount(S_i(p))
        bound = ch * taps * xmost
        loose = 2 * sum(abs(gr["f"]) * l8 * gr["maxabs"] for gr in gs) + bound
    else:
        bound = ch * taps * xmost * max(abs(v) for v in wcode.levels)
        loose = sum(abs(gr["f"]) * l8 * gr["maxabs"] for gr in gs)
    if bound + 1 > 2**31 - 1:
        return None
    bias = (np.asarray(g.constants[node.inputs[2]], np.int64).reshape(m)
            if len(node.inputs) > 2 and node.inputs[2] else np.zeros(m, np.int64))
    # binary input: per padding pattern (0: none) adj = sum over its taps of C - 2 popcount(w_t)
    npat, adj = 1, np.zeros((1, m), np.int64)
    if binary and any(p > 0 for p in node.attrs.pads):
        rpat, cpat, pattaps = padding_patterns(c)
        npat = len(pattaps)
        if npat > 255:
            return None
        pops = np.unpackbits(wp[:, :, 0, :], axis=-1).sum(-1).astype(np.int64)  # [M, taps]
        adj = np.stack([(ch - 2 * pops[:, ts]).sum(-1) for ts in pattaps])
        if npat > 1:
            tables.update(rpat=np.array(rpat, np.uint8), cpat=np.array(cpat, np.uint8))
    packed = c["y_packed"]
    s16 = packed and loose <= 32766 and hsteps <= hc
    extra = dict(NPAT=npat)
    if packed:
        levels = 1 if c["y_binary"] else c["hi"] - c["lo"]
        lo = 0 if c["y_binary"] else c["lo"]
        thr = np.full((levels, mq), bound + 1, np.int64)
        thr[:, :m] = (np.clip(-bias, -bound, bound + 1)[None] if c["y_binary"] else  # acc + b >= 0
                      thresholds(bias, np.asarray(rq["multiplier"], np.int64),
                                 np.asarray(rq["shift"], np.int64), lo, levels, bound))
        if binary:  # acc >= T  <=>  D <= (C taps - T - adj) / 2, per pattern
            tau = np.full((npat, levels, mq), -1, np.int64)
            tau[:, :, :m] = (ch * taps - thr[None, :, :m] - adj[:, None, :]) // 2
            thr = np.clip(tau, -1, ch * taps)
        else:
            thr = thr[None]
        # [pattern][quad][level][4 lanes] (k-bit, int16: the 4 lanes twice, pixels p and p+1)
        tables["thr"] = np.moveaxis(quads(thr, s16 and not binary), 0, 1).reshape(-1).astype(
            np.int16 if s16 else np.int32)
        extra.update(LEVELS=levels, CODE_LO=lo, MASK_CODE=levels == 1 and lo == 0 and c["YB"] == 1,
                     PATSTRIDE=levels * mq)
    else:
        mult, shift = (np.asarray(rq[k], np.int64) for k in ("multiplier", "shift"))
        folded = np.zeros((npat, mq), np.int64)
        folded[:, :m] = bias + (ch * taps - adj if binary else 0)   # binary: - 2 D follows
        if (np.abs(shift).max(initial=0) > 31 or mult.min(initial=0) < 0
                or np.abs(folded).max(initial=0) >= 2**31):
            return None
        per = np.zeros((4, mq), np.int64)
        per[1:, :m] = np.stack([mult, np.maximum(shift, 0), np.minimum(shift, 0)])
        tables.update(rq=quads(per, False).reshape(-1).astype(np.int32),
                      bias=folded.reshape(-1).astype(np.int32))
        zy = c["out_offset"]
        extra.update(RQ=rq_mode(x_t, w_t, y_t, m), zy=zy, ylo=c["lo"] - zy, yhi=c["hi"] - zy,
                     PATSTRIDE=mq)

    # interior output pixels: every tap inside the input
    (s0, s1), (d0, d1), (p0, p1) = c["S"], c["D"], c["P"]
    oh_lo, ow_lo = -(-p0 // s0), -(-p1 // s1)
    oh_hi = min(c["OH"] - 1, (h_ - 1 + p0 - (kh - 1) * d0) // s0)
    ow_hi = min(c["OW"] - 1, (w_ - 1 + p1 - (kw - 1) * d1) // s1)
    nx, nw = xb * pb, wb * (1 if per_m else q2)
    xloads, xref = loads(nx, "xv")
    wloads, wref = loads(nw, "wv")
    copies = []  # an interior pixel's chunks: (offset in the block, offset from its first tap)
    if cb % 8 == 0:
        for t in range(taps):
            src = ((t // kw) * d0 * w_ + (t % kw) * d1) * xb * cb
            for i in range(xb):
                for k in range(cb // 8):
                    copies.append((((t * cb // 8 + k) * pb * xb + i) * 16, src + i * cb + 8 * k))
    work = 3 * sum(len(gr["terms"]) for gr in gs) * pb * q2
    context = dict(
        c, T=taps, HS=hsteps, L8=l8, PB=pb, Q2=q2, Q=q, MQ=mq, MP8=mp8, MB=mq // q, NPIX=npix,
        OHW=c["OH"] * c["OW"], groups=gs, consts=consts, PER_M=per_m, NX=nx, xloads=xloads,
        xref=xref, wloads=wloads, wref=wref, U=max(1, min(16, hsteps - 1, 1000 // work)), HC=hc,
        NCH=nch,
        S16=s16, PACKED=packed, W_BINARY=w_binary, CT=ch * taps,
        ALIGNED=cb % 8 == 0, copies=copies if len(copies) <= UNROLLED_COPIES else None,
        OH_LO=oh_lo, OH_HI=oh_hi, OW_LO=ow_lo, OW_HI=ow_hi,
        ALL_INTERIOR=(oh_lo, ow_lo, oh_hi, ow_hi) == (0, 0, c["OH"] - 1, c["OW"] - 1),
        LAST_BW=[1 << (k // 2) if mp8 - 8 + k // 2 < m else 0 for k in range(16)], **extra)
    return context, [node.inputs[0], node.outputs[0]], tables


@kernel("QConvBits")
def qconv_bits(ctx, node):
    found = plan(ctx, node)
    if found is None:
        return None
    context, args, tables = found
    return Kernel("neon_qconv_bits.c.j2", context, args, tables=tables, needs=NEEDS)
