"""int8 convolutions with one group (pointwise 1x1 and any kh x kw, stride, dilation, padding)
on AVX2, generated per layer (QConvNHWC, weights OHWI), and the requantization every x86 int8
kernel shares (templates/x86_qhelpers.c.j2).

Before:  y[p][m] = clamp(zy + RQ(b[m] + sum_k (x_k(p) - zx) w[m][k], M0[m], shift[m]))
         (generic/qconv.c.j2 in NCHW; k runs over the kh x kw x C patch of output pixel p)
After:   per chunk of output pixels (16 KiB of patches, at least PB = 4 pixels), their patches
         x_k(p) (the input zero point zx on padding taps) sign-extended to int16 on the stack
         (a 1x1 stride-1 layer with even C: the chunk's input rows as they are); then per
         block of 16 output channels (its weights stay in L1) and PB pixels of the chunk
         acc[p][m] = b'[m] + sum_j vpmaddwd(x_2j x_2j+1 (p), w[m][2j] w[m][2j+1])
         with b'[m] = b[m] - zx sum_k w[m][k] (folded at compile time; a padding tap adds
         (zx - zx) w = 0 as in the portable kernel), weights packed at compile time in the
         order the loop reads them; then RQ, zy and the clamp on 8 lanes at a time.

Exactness of the products.  vpmaddubsw (u8 x s8) sums each pair of products into a SATURATED
int16: with u8 inputs x + 128 in 0..255, a pair of weights whose positive parts add up to more
than 128 or whose negative parts add up to less than -128 can leave int16 (e.g. -128, -128
against 255, 255: -65280), and per-channel quantized weights (max |w| = 127 in every channel)
have many such pairs: in the four reference CNNs (tests/model_zoo.py, onnxruntime's QDQ) 25 %
of the weight pairs of every convolution can saturate, and every block of 16 channels x 4 k
holds at least one, so a fast path for safe groups plus an exact correction for the others
would run the correction everywhere. These kernels multiply int16 values instead (vpmaddwd):
every product has |x w| <= 128 * 128 = 2^14 and a pair sum at most 2^15 in magnitude, far
inside vpmaddwd's int32 result (it can only wrap on (-2^15)(-2^15) twice), so every product and
pair sum is exact for every input, with no per-layer condition and no u8 offset or correction.
The price, measured on this machine (AMD EPYC Zen 4, family 25, model 17, AVX-512 + VNNI;
this loop uses AVX2 only, see the VNNI path below for that instruction): 16 channels x 4
pixels reach about 75 GMAC/s with vpmaddwd against about 100 with vpmaddubsw + vpmaddwd(ones)
(the inexact form onnxruntime's MLAS uses): the loop is bound by 256-bit vector uops, 8 per 32
MACs here (2 x vpmaddwd + vpaddd) against 6 (vpmaddubsw + vpmaddwd + vpaddd); the exact
variants of the u8 form (weights split in halves, inputs split in nibbles, a residual pass)
all need more than 8.

VNNI path (compiled when __AVX512VNNI__ and __AVX512VL__ are defined, e.g. target
x86-avx512-vnni; the same generated C holds both paths, chosen by the preprocessor).
vpdpbusd (_mm256_dpbusd_epi32) multiplies four u8 values by four s8 values and adds the four
products to an int32 lane with no intermediate saturation (wrapping modulo 2^32 like vpaddd),
32 MACs per instruction. With u_k = x_k + 128 (x XOR 0x80, in 0..255):
         sum_k w_k (x_k - zx) = sum_k w_k u_k - (zx + 128) sum_k w_k
so acc[p][m] = b''[m] + sum_j vpdpbusd(u_4j..u_4j+3 (p), w[m][4j..4j+3]) with
b''[m] = b[m] - (zx + 128) sum_k w[m][k] (compile time). Patches are gathered as u8 (PCV
pixels of K4 bytes, K padded to a multiple of 4 with zero weights, so the pad bytes add 0
whatever they hold); padding taps read u = zx + 128 (in 0..255: zx is int8), whose term
w (u - 128 - zx) of the sum above is 0, as in the portable kernel. Blocks of 4 to 6 pixels
(VNNI_PB: the count that pads the layer's pixels least) x 16 channels (two vectors of 8) stay
in registers (AVX512VL gives 32 ymm registers).
The weights are s8 as stored, packed per 16-channel block as [K4 / 4][16 lanes][4 k] (the lane
order of the AVX2 path, so its requantization records and stores serve both). Exact: each
product |u w| <= 255 * 128 < 2^15, four of them below 2^17, so every vpdpbusd step is an exact
int32 addition modulo 2^32; the exact acc is the same as above (bounded below 2^31), so its
value modulo 2^32 is the acc. b'' is stored modulo 2^32 as int32 (it may exceed int32 where
the acc does not: every addition is modulo 2^32, so only the final sum has to fit).
Two 16-channel blocks are computed together in zmm registers (16 int32 lanes: one block's two
vectors), so each broadcast input quad feeds two vpdpbusd; the halves are requantized as ymm.
Row form (``row_form_of``, x86_qconv_rows.c.j2; no patches): per output row, the KH input rows
it reads are flipped to u8 once into a stack buffer with their padding columns (u = zx + 128),
and each output pixel's run of KW x C bytes per row is read in place as RQ = ceil(KW C / 4)
quads, against weights repacked [KH][4 RQ] per channel with zeros past KW C (table wr): the
bytes past the run belong to the next pixels or the slack but meet a zero weight, so they add
0. Taken for a contiguous run (dilation width 1) that is a multiple of 4 bytes or at least 9
bytes long (at most a third of the MACs then meet zero weights), e.g. the first convolutions
(C = 1 or 3), whose patch gathering cost more than their MACs. Measured on this machine
(bench/x86.py, x86-avx512-vnni vs onnxruntime): MobileNetV1 0.51 -> 0.42, ResNet-8 0.45 ->
0.32, DS-CNN 0.59 -> 0.52 with the zmm pairs.

Accumulation: vpaddd adds modulo 2^32 (no C overflow: intrinsics), and validation
(ir/ops check_accumulator) bounds the exact acc by |b| + max|x - zx| sum|w| < 2^31 for every
input, so the final sum modulo 2^32 is the exact acc (|b'| < 2^31 by the same bound).

Requantization (x86_qhelpers.c.j2), equal to int8_helpers' edgecc_requantize:
* left shift l >= 0 saturated: (a << l) >> l == a exactly when a 2^l fits int32, otherwise the
  result is INT32_MAX or INT32_MIN by a's sign;
* SRDHM(a, M0) = trunc((a M0 + nudge) / 2^31) with nudge = 2^30 (a M0 >= 0) or 1 - 2^30 equals
  floor((a M0 + 2^30) / 2^31) for every a: for a M0 >= 0 both are the floor; for a M0 < 0 the
  numerator n = a M0 + 1 - 2^30 is negative and trunc(n / d) = ceil(n / d) =
  floor((n + d - 1) / d) = floor((a M0 + 2^30) / 2^31), d = 2^31. The 64-bit products come from
  vpmuldq (even lanes; odd lanes shifted down), the sum's bits 31..62 are the result, which
  fits int32 since 0 <= M0 < 2^31 (no a = M0 = -2^31 case);
* RDBP(h, e) = (h >> e) + [(h & (2^e - 1)) > ((2^e - 1) >> 1) + (h < 0)] with per-lane e
  (vpsravd) and the masks precomputed: the helper's formula, lane by lane;
* clamp(h + zy, act_min, act_max) = clamp(h, act_min - zy, act_max - zy) + zy (no overflow).
Short form (mode 2), used when every channel's worst |acc| (|b| + max|x - zx| sum|w|, over all
int8 inputs) is below 2^30 and its shift is a right shift e in 1..22 (no left shift):
  RDBP(h, e) + zy = (h + 2^(e-1) + zy 2^e - [h < 0]) >> e   (arithmetic shift, i.e. floor)
since for h >= 0 RDBP rounds up exactly when h mod 2^e >= 2^(e-1), i.e. floor((h + 2^(e-1)) /
2^e), for h < 0 exactly when h mod 2^e >= 2^(e-1) + 1, i.e. floor((h + 2^(e-1) - 1) / 2^e),
and floor((X + zy 2^e) / 2^e) = floor(X / 2^e) + zy. No lane overflows: |h| <= |acc| + 1 <
2^30 + 1 and |2^(e-1) + zy 2^e| <= 2^21 + 2^29; the clamp to [act_min, act_max] follows.
Every caller narrows the int32 result to int8 with signed saturation (vpackssdw to int16, then
vpacksswb), i.e. clamp(v, -128, 127) for every int32 v, so a bound equal to -128 or 127 is
dropped (modes 3: act_max = 127, only max(v, act_min); 4: neither bound).

Preconditions (``layer``): int8 input, output and constant weights (zero point 0), constant
bias or none, per-tensor input quantization, |shift| <= 31, and K = kh kw C <= 4096 (the patches
of PB pixels as int16 on the stack: at most 32 KiB). The layout pass (``accepts``) converts
exactly these.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...passes import layout_nhwc
from ..generic.int8 import activation_bounds, requant_tables
from ..kernels import Kernel, kernel
from .layout import accepts

COMMON = ("x86_common.c.j2", "x86_qhelpers.c.j2")
PB = 4          # output pixels per block
VNNI_PB = (6, 5, 4)  # output pixels per block on the VNNI path: the one padding P least
MAX_K = 4096    # patch length (int16 on the stack: at least PB * 2 * MAX_K bytes)
CHUNK_BYTES = 16384  # patches gathered at once (stack): then each weight block over them all
ROWS_BYTES = 16384  # the VNNI row form's padded input rows (stack)
FIELDS = 6      # per vector of 8 lanes: bias, M0, left, right, mask (or r), half
ACC_LIMIT = 1 << 30  # the short requantization's bounds (edgecc_x86_rq mode 2)
MAX_SHIFT = 22
LANES16 = (0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15)  # vpunpck / vpackssdw order


def int8_weights(graph, node, m: int):
    """(x, w, y types, weights int64 [m, -1] as stored, bias int64 [m]) of a QConv(NHWC) or
    QGemm with int8 input and output, per-tensor input quantization, constant int8 weights
    with zero point 0 and a constant bias or none; else None."""
    x_t, w_t, y_t = (graph.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    b = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if (any(t.dtype.name != "INT8" for t in (x_t, w_t, y_t)) or x_t.quant is None
            or len(x_t.quant.scale) != 1 or y_t.quant is None or len(y_t.quant.scale) != 1
            or node.inputs[1] not in graph.constants
            or (b is not None and b not in graph.constants)
            or w_t.quant is None or any(w_t.quant.zero_point)):
        return None
    w = graph.constants[node.inputs[1]].astype(np.int64)
    bias = (graph.constants[b].astype(np.int64).reshape(m) if b is not None
            else np.zeros(m, np.int64))
    return x_t, w_t, y_t, w, bias


def requant_records(x_t, w_t, y_t, folded, lanes, worst=None):
    """(table, mode): the kernels' per-channel records, per vector of 8 lanes (``lanes``: the
    channel of each lane, -1 for padding) the fields bias (``folded``), M0, left, right, mask,
    half as int32 [vectors * 6 * 8], and the requantization's form (x86_qhelpers' edgecc_x86_rq):
    2, the short form, when every channel's worst |acc| (``worst``) is below 2^30, its shift a
    right shift e of 1..22, and the mask field then holds r = 2^(e-1) + zy 2^e; else 1 with a
    left shift somewhere, 0 without. None when a shift or bias is outside the kernels' range."""
    m = len(folded)
    tables = requant_tables(x_t, w_t, y_t, m)
    m0 = tables["multiplier"].astype(np.int64)
    shift = tables["shift"].astype(np.int64)
    if (np.abs(shift).max(initial=0) > 31 or m0.min(initial=0) < 0
            or np.abs(folded).max(initial=0) >= 2**31):
        return None
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    mask = (np.int64(1) << right) - 1
    short = (worst is not None and int(np.max(worst, initial=0)) < ACC_LIMIT
             and int(right.min(initial=1)) >= 1 and int(right.max(initial=1)) <= MAX_SHIFT)
    if short:
        zy = int(y_t.quant.zero_point[0])
        mask = (np.int64(1) << np.maximum(right - 1, 0)) + (np.int64(zy) << right)
    per = np.stack([folded, m0, left, right, mask, mask >> 1])  # [6, m]
    lanes = np.asarray(lanes, np.int64).reshape(-1, 8)
    out = np.zeros((len(lanes), FIELDS, 8), np.int64)
    out[:, 3, :] = 1 if short else 0  # padding lanes: any valid shift
    valid = lanes >= 0
    for f in range(FIELDS):
        out[:, f, :][valid] = per[f][lanes[valid]]
    mode = 2 if short else (1 if int(left.max(initial=0)) > 0 else 0)
    return out.reshape(-1).astype(np.int32), mode


def worst_acc(x_t, bias, abs_weight_sums):
    """The largest |acc| = |b + sum (x - zx) w| any int8 input can give, per channel."""
    zx = int(x_t.quant.zero_point[0])
    return np.abs(bias) + max(127 - zx, zx + 128) * abs_weight_sums


def epilogue(node, y_t, mode: int) -> dict:
    """Template values of the requantization's end: mode, zero point and clamp bounds (as
    edgecc_x86_rq takes them: offset by -zy except in the short form)."""
    act_min, act_max = activation_bounds(node.attrs.activation, y_t)
    zy = int(y_t.quant.zero_point[0])
    off = 0 if mode == 2 else zy
    if mode == 2 and act_max >= 127:  # the narrowing's saturation clamps to [-128, 127]
        mode = 4 if act_min <= -128 else 3
    return dict(mode=mode, zy=zy, lo=act_min - off, hi=act_max - off)


def channel_lanes(m: int):
    """(lanes of the 16-channel blocks then of a last 8-channel block, blocks of 16, tail 8):
    channels padded to 16 (or to 16k + 8 when m % 16 is 1..8), -1 beyond m."""
    nb16 = m // 16 + (1 if m % 16 > 8 else 0)
    tail8 = 0 < m % 16 <= 8
    lanes = [16 * j + l for j in range(nb16) for l in LANES16]
    lanes += [16 * nb16 + l for l in range(8)] if tail8 else []
    return [c if c < m else -1 for c in lanes], nb16, tail8


def pack_pairs(weights: np.ndarray, lanes) -> np.ndarray:
    """int16 [blocks][K2][lanes of the block][2]: weights [m, K] (K padded to even with 0) in
    the loop's read order, block by block (16 lanes, then 8)."""
    m, k = weights.shape
    k2 = (k + 1) // 2
    wp = np.zeros((m + 1, 2 * k2), np.int64)  # row m: the zero row of padding lanes
    wp[:m, :k] = weights
    pairs = wp.reshape(m + 1, k2, 2)
    lanes = [c if c >= 0 else m for c in lanes]
    out = []
    for start in range(0, len(lanes), 16):
        block = lanes[start:start + 16]
        out.append(pairs[block].transpose(1, 0, 2).reshape(-1))  # [K2][lanes][2]
    return np.concatenate(out).astype(np.int16)


def pack_quads(weights: np.ndarray, lanes) -> np.ndarray:
    """int8 [blocks][K4 / 4][lanes of the block][4]: weights [m, K] (K padded to a multiple of 4
    with 0) in the VNNI loop's read order, block by block (16 lanes, then 8)."""
    m, k = weights.shape
    k4 = -(-k // 4) * 4
    wp = np.zeros((m + 1, k4), np.int64)  # row m: the zero row of padding lanes
    wp[:m, :k] = weights
    quads = wp.reshape(m + 1, k4 // 4, 4)
    lanes = [c if c >= 0 else m for c in lanes]
    out = [quads[lanes[s:s + 16]].transpose(1, 0, 2).reshape(-1) for s in range(0, len(lanes), 16)]
    return np.concatenate(out).astype(np.int8)


def vnni_bias(bias, weights, zx: int, lanes) -> np.ndarray:
    """int32 per lane: b - (zx + 128) sum_k w, modulo 2^32 (0 on padding lanes)."""
    b = bias - (zx + 128) * weights.sum(axis=1)
    b = (b + 2**31) % 2**32 - 2**31
    return np.array([b[c] if c >= 0 else 0 for c in lanes], np.int64).astype(np.int32)


def chunk_of(p_all: int, pb: int, row_bytes: int) -> int:
    """Pixels per chunk: CHUNK_BYTES of patches, a multiple of pb, at least pb, at most P
    rounded up to pb."""
    return max(pb, min(CHUNK_BYTES // row_bytes, -(-p_all // pb) * pb) // pb * pb)


def layer(graph, node):
    """(types, OHWI weights [M, K], bias) of a one-group QConv/QConvNHWC the kernel takes."""
    if node.op not in ("QConv", "QConvNHWC") or node.attrs.group != 1:
        return None
    w_t = graph.types[node.inputs[1]]
    if w_t.rank != 4 or graph.types[node.inputs[0]].rank != 4:
        return None
    m = w_t.shape[0]
    found = int8_weights(graph, node, m)
    if found is None:
        return None
    x_t, w_t, y_t, w, bias = found
    if node.op == "QConv":
        w = w.transpose(0, 2, 3, 1)
    weights = w.reshape(m, -1)
    if weights.shape[1] > MAX_K:
        return None
    folded = bias - int(x_t.quant.zero_point[0]) * weights.sum(axis=1)
    lanes, nb16, tail8 = channel_lanes(m)
    found = requant_records(x_t, w_t, y_t, folded, lanes,
                            worst_acc(x_t, bias, np.abs(weights).sum(axis=1)))
    if found is None:
        return None
    return dict(types=(x_t, w_t, y_t), weights=weights, bias=bias, rq=found[0], mode=found[1],
                lanes=lanes, NB16=nb16, TAIL8=tail8)


@accepts("QConv")
def takes(graph, node) -> bool:
    return layout_nhwc.convertible(graph, node) and layer(graph, node) is not None


@kernel("QConvNHWC")
def qconv_nhwc(ctx, node):
    found = layer(ctx.graph, node)
    if found is None:
        from .int8_depthwise import qdepthwise  # the other QConvNHWC kernel
        return qdepthwise(ctx, node)
    a = node.attrs
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, m = y.shape
    weights = found["weights"]
    k = weights.shape[1]
    x_t = found["types"][0]
    k2 = (k + 1) // 2
    p_all = n * oh * ow
    k4 = -(-k // 4) * 4
    zx = int(x_t.quant.zero_point[0])
    chunk = chunk_of(p_all, PB, 4 * k2)
    pbv = min(VNNI_PB, key=lambda b: (-(-min(p_all, CHUNK_BYTES // k4) // b) * b, -b))
    rows = tuple(a.kernel) == (1, 1) and tuple(a.strides) == (1, 1) and not any(a.pads)
    contiguous = rows and c % 2 == 0
    context = dict(P=n * oh * ow, OH=oh, OW=ow, H=h, W=w, C=c, M=m, KH=a.kernel[0],
                   KW=a.kernel[1], SH=a.strides[0], SW=a.strides[1], DH=a.dilations[0],
                   DW=a.dilations[1], PT=a.pads[0], PL=a.pads[1], K=k, K2=k2, PB=PB, PC=chunk,
                   CONTIGUOUS=contiguous, X_BYTES=n * h * w * c,
                   NB16=found["NB16"], TAIL8=found["TAIL8"], zx=zx,
                   K4=k4, PBV=pbv, PCV=chunk_of(p_all, pbv, k4),
                   CONTIGUOUS_V=rows and c % 4 == 0, UPAD=zx + 128,
                   **epilogue(node, found["types"][2], found["mode"]))
    tables = dict(w=pack_pairs(weights, found["lanes"]), rq=found["rq"],
                  wq=pack_quads(weights, found["lanes"]),
                  bq=vnni_bias(found["bias"], weights, zx, found["lanes"]))
    row_form = row_form_of(context)
    context.update(ROWS_V=row_form is not None, **(row_form or {}))
    if row_form is not None:
        run, r4 = context["KW"] * c, 4 * row_form["RQ"]
        padded = np.zeros((m, context["KH"], r4), np.int64)
        padded[:, :, :run] = weights.reshape(m, context["KH"], run)
        tables["wr"] = pack_quads(padded.reshape(m, -1), found["lanes"])
    return Kernel("x86_qconv.c.j2", context, [x.name, y.name], tables=tables, needs=COMMON)


def row_form_of(ctx: dict) -> Optional[dict]:
    """The VNNI row form's values (x86_qconv_rows.c.j2), or None where the patch form stays:
    1x1 stride-1 layers (rows already in place), a dilated width (runs not contiguous), runs
    of fewer than 9 bytes not a multiple of 4 (more than a third of the MACs would meet zero
    weights), or KH rows of more than ROWS_BYTES. WHOLE: all the padded rows fit ROWS_BYTES,
    flipped once per image (else the KH rows of each output row, per output row)."""
    run = ctx["KW"] * ctx["C"]
    if ctx["CONTIGUOUS_V"] or ctx["DW"] != 1 or (run % 4 and run < 9):
        return None
    rq = -(-run // 4)
    used = max((ctx["OW"] - 1) * ctx["SW"] * ctx["C"] + 4 * rq, (ctx["PL"] + ctx["W"]) * ctx["C"])
    rb = -(-used // 32) * 32
    if ctx["KH"] * rb > ROWS_BYTES:
        return None
    pbr = min(VNNI_PB, key=lambda b: (-(-ctx["OW"] // b) * b, -b))
    hp = (ctx["OH"] - 1) * ctx["SH"] + (ctx["KH"] - 1) * ctx["DH"] + 1  # padded rows read
    whole = hp * rb <= ROWS_BYTES
    return dict(RQ=rq, RB=rb, PBR=pbr, N=ctx["P"] // (ctx["OH"] * ctx["OW"]), HP=hp,
                WHOLE=whole, KSTEP=ctx["DH"] * rb if whole else rb)
