"""int8 depthwise convolutions (group = C = M, any kh x kw, stride, dilation, padding) on AVX2,
generated per layer (QConvNHWC with weights [1, kh, kw, C]).

Before:  y[p][c] = clamp(zy + RQ(b[c] + sum_t (x_t(p)[c] - zx) w[t][c], M0[c], shift[c]))
After:   per two output pixels p (sharing each weight load) and block of 16 channels, taps in
         pairs (t, t+1); a window inside the input reads its taps at constant offsets:
         acc[c] = b'[c] + sum_t vpmaddwd(x_t(p)[c] x_t+1(p)[c], w[t][c] w[t+1][c])
         b'[c] = b[c] - zx sum_t w[t][c] (compile time); padding taps read a row of zx
         (adds 0, as in the portable kernel), an odd last tap is paired with weight 0.
The interleaving (vpunpck{l,h}wd of two taps' sign-extended rows) puts channels 0-3, 8-11 in
one vector and 4-7, 12-15 in the other; weights and requantization tables are packed in that
lane order at compile time, and vpackssdw of the two results gives the channels back in
order. Exact for every input: products of int16 values |x w| <= 2^14, pair sums <= 2^15
(int8_conv.py's argument: no vpmaddubsw saturation can arise), int32 accumulation modulo
2^32 of a sum validation bounds below 2^31; requantization: int8_conv.py.

The last r = C % 16 channels: when r <= 8, two output pixels at once (8 lanes each: the lane
order above with channels 0-7 of pixel q and of pixel q + 1; weights and tables packed so), read
8 bytes per tap; when r > 8, one 16-lane block. Those reads take bytes past channel C - 1
(the next pixel's, times weight 0) except at the end of the input tensor, where they go
through a zero-filled copy: no read past the tensor.

VNNI paths (compiled when __AVX512VNNI__ and __AVX512VL__ are defined, e.g. target
x86-avx512-vnni; the same generated C holds both, chosen by the preprocessor). vpdpbusd adds
four u8 x s8 products to an int32 lane with no intermediate saturation. With u = x + 128
(x XOR 0x80, in 0..255):  sum_t w[t] (x_t - zx) = sum_t w[t] u_t - (zx + 128) sum_t w[t],  so
         acc[c] = b''[c] + sum_g vpdpbusd(u_g0 u_g1 u_g2 u_g3 [c], w_g0 w_g1 w_g2 w_g3 [c])
         b''[c] = b[c] - (zx + 128) sum_t w[t][c]  (compile time, stored modulo 2^32)
over groups g of four taps, the last group padded with weight 0 (whatever those lanes read
adds 0); padding taps read zx, i.e. u = zx + 128, whose term w (u - 128 - zx) is 0 as in the
portable kernel. Four tap rows of 32 channels become four vectors of one int32 lane per
channel by vpunpck{l,h}bw then vpunpck{l,h}wd (lanes LANES32: vector v holds channels
4v..4v+3 and 16+4v..16+4v+3); weights are packed at compile time as [group][lane][4 taps] in
that order, requantization records too, and vpackssdw, vpacksswb of the four results give
the 32 channels back in order. Exact: |u w| <= 255 * 128 < 2^15, four of them < 2^17, each
vpdpbusd an exact int32 addition modulo 2^32; the exact acc is the one above (bounded below
2^31 by validation), so its value modulo 2^32 is the acc, equal to the vpmaddwd path's.
* Output columns whose window lies inside the input's columns, when kh <= 4 (the row loop):
  a group is one column of taps (its kh rows, padded to 4 with weight 0); rows outside the
  input read the zero-point row (column step 0). One input column's interleaved vectors
  serve every tap column that reads it: at stride s, dilation d with s % d == 0, the next
  output pixel reuses kw - s / d of them (3x3 stride 1: one new column per pixel instead
  of three groups of taps). Blocks of 32 channels, then a last 16 in 128-bit vectors
  (C % 32 == 16); C = 8 or 16 at stride 1: one 32-byte read covers 32 / C output pixels'
  channels (lanes: channel LANES32[l] % C), so 32 / C pixels per step.
* Padded copy (PADV: C % 32 == 0, kh <= 4, the padded pixels read at most PAD_BYTES): the
  input is first copied as u = x + 128 with its padding (u = zx + 128, whose term is 0 as
  above) once per image, and the row loop covers every output column from that copy (no XOR
  per read, no border pixels left to the pair loop). DS-CNN (5 columns, 2 of them borders):
  0.94x the time of the inside-columns-only form (bench/x86.py, x86-avx512-vnni).
* The other pixels (borders, and every pixel of a layer the row loop does not take) go
  through the pixel-pair loop: 32 channels at a time, taps in groups of four, then its
  16-channel vpmaddwd blocks for the rest. When the row loop covers every channel, the
  pair loop runs over the border pixels only; else its VNNI blocks skip pixel pairs that
  lie in the row loop's columns (the row loop writes them, the same bytes).
Reads: every 32- (16-) byte read lies within one input pixel's channels or the row's next
pixels inside the window (C = 8, 16), or the zero-point row (at least 32 bytes).

Preconditions: int8_conv.int8_weights' (int8, constant weights with zero point 0, per-tensor
input), depth multiplier 1, |shift| <= 31.
"""
from __future__ import annotations

import numpy as np

from ...passes import layout_nhwc
from ..kernels import Kernel
from .int8_conv import (COMMON, LANES16, epilogue, int8_weights, requant_records,
                        worst_acc)
from .layout import accepts

# the VNNI path's lanes per 32 channels: vector v holds channels 4v..4v+3, 16+4v..16+4v+3
# (the order vpunpck{l,h}bw then vpunpck{l,h}wd leave them in)
LANES32 = tuple(16 * h + 4 * v + i for v in range(4) for h in range(2) for i in range(4))
PAD_BYTES = 32768  # the VNNI row loop's padded input copy (stack), when it fits


def layer(graph, node):
    """(types, weights [taps, C], folded bias, rq, lanes) of a depthwise layer the kernel takes."""
    if node.op not in ("QConv", "QConvNHWC") or node.attrs.group == 1:
        return None
    x_t, w_t = graph.types[node.inputs[0]], graph.types[node.inputs[1]]
    if x_t.rank != 4 or w_t.rank != 4:
        return None
    nhwc = node.op == "QConvNHWC"
    c = x_t.shape[3] if nhwc else x_t.shape[1]
    m = w_t.shape[3] if nhwc else w_t.shape[0]
    if node.attrs.group != c or m != c or (w_t.shape[0] if nhwc else w_t.shape[1]) != 1:
        return None
    found = int8_weights(graph, node, m)
    if found is None:
        return None
    x_t, w_t, y_t, w, bias = found
    taps = w.reshape(-1, c) if nhwc else w.reshape(c, -1).T  # [kh kw, C]
    folded = bias - int(x_t.quant.zero_point[0]) * taps.sum(axis=0)
    c16, r = -(-c // 16) * 16, c % 16
    pair = (0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7)  # two pixels' 8 channels
    lanes = [b + l if b + l < c else -1 for b in range(0, c16, 16)
             for l in (pair if 0 < r <= 8 and b == c16 - 16 else LANES16)]
    worst = worst_acc(x_t, bias, np.abs(taps).sum(axis=0))
    found = requant_records(x_t, w_t, y_t, folded, lanes, worst)
    if found is None:
        return None
    return dict(types=(x_t, w_t, y_t), taps=taps, bias=bias, rq=found[0], mode=found[1],
                lanes=lanes, folded=folded, worst=worst)


@accepts("QConv")
def takes(graph, node) -> bool:
    return layout_nhwc.convertible(graph, node) and layer(graph, node) is not None


def pack_quads(taps: np.ndarray, lanes32) -> np.ndarray:
    """int8 [C / 32][T4][32 lanes][4 taps]: the VNNI path's weights, taps in groups of 4 (the
    last padded with weight 0), lanes in LANES32 order."""
    t, c = taps.shape
    t4 = -(-t // 4)
    padded = np.zeros((4 * t4, c), np.int64)
    padded[:t] = taps
    sel = padded[:, lanes32].reshape(t4, 4, -1, 32)  # [group][tap][block][lane]
    return np.ascontiguousarray(sel.transpose(2, 0, 3, 1)).reshape(-1).astype(np.int8)


def vnni_bias(bias, taps, zx: int, lanes32) -> np.ndarray:
    """int32 per lane: b - (zx + 128) sum_t w[t], modulo 2^32."""
    b = bias - (zx + 128) * taps.sum(axis=0)
    b = (b + 2**31) % 2**32 - 2**31
    return b[np.asarray(lanes32, np.int64)].astype(np.int32)


def pack(taps: np.ndarray, lanes) -> np.ndarray:
    """int16 [C16 / 16][T2][2 vectors][8 lanes][2 taps]: the taps in pairs, in lane order."""
    t, c = taps.shape
    t2 = (t + 1) // 2
    padded = np.zeros((2 * t2, c + 1), np.int64)  # column c: padding lanes' zeros
    padded[:t, :c] = taps
    idx = np.array([l if l >= 0 else c for l in lanes]).reshape(-1, 2, 8)  # [blocks][2][8]
    pairs = padded.reshape(t2, 2, c + 1)  # [T2][tap in pair][C]
    out = pairs[:, :, idx]  # [T2][2 taps][blocks][2][8]
    return np.ascontiguousarray(out.transpose(2, 0, 3, 4, 1)).reshape(-1).astype(np.int16)


def qdepthwise(ctx, node):
    """The depthwise QConvNHWC kernel (int8_conv.qconv_nhwc hands these over), or None."""
    found = layer(ctx.graph, node)
    if found is None:
        return None
    a = node.attrs
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    x_t, _, y_t = found["types"]
    zx = int(x_t.quant.zero_point[0])
    t = a.kernel[0] * a.kernel[1]
    t2, t4 = (t + 1) // 2, -(-t // 4)
    context = dict(P=n * oh * ow, OH=oh, OW=ow, H=h, W=w, C=c, KH=a.kernel[0], KW=a.kernel[1],
                   SH=a.strides[0], SW=a.strides[1], DH=a.dilations[0], DW=a.dilations[1],
                   PT=a.pads[0], PL=a.pads[1], T=t, T2=t2, T4=t4, TS=max(2 * t2, 4 * t4),
                   CB=c // 16, CB32=c // 32, R=c % 16,
                   P_IN=n * h * w, **epilogue(node, y_t, found["mode"]))
    kh, kw, sw, dw, pl = a.kernel[0], a.kernel[1], a.strides[1], a.dilations[1], a.pads[1]
    ow0 = -(-pl // sw)  # the output columns whose window is inside the input's columns
    ow1 = min(ow, (w - 1 - (kw - 1) * dw + pl) // sw + 1)
    px = 32 // c if c in (8, 16) and sw == 1 else 1  # output pixels per 32 lanes
    half = c % 32 == 16 and px == 1  # a last block of 16 channels in 128-bit vectors
    ow1 = ow0 + max(ow1 - ow0, 0) // px * px
    rows = (c >= 32 or px > 1 or half) and kh <= 4 and ow1 > ow0
    hp = (oh - 1) * a.strides[0] + (kh - 1) * a.dilations[0] + 1  # padded rows, columns read
    wp = (ow - 1) * sw + (kw - 1) * dw + 1
    padv = c % 32 == 0 and px == 1 and kh <= 4 and hp * wp * c <= PAD_BYTES
    if padv:  # the row loop over every column, from a flipped, padded copy of the input
        rows, ow0, ow1 = True, 0, ow
    context.update(PADV=padv, HP=hp, WP=wp, WC=min(w, wp - pl), HC=min(h, hp - a.pads[0]),
                   UPAD=zx + 128)
    step = px * sw  # input columns from one step to the next
    rb = 1 if px > 1 else c // 32
    context.update(ROWS=rows, OW0=ow0, OW1=ow1, PX=px, RB=rb, HALF=half,
                   FULL=rows and (c % 32 == 0 or px > 1 or half),  # the row loop: all channels
                   SHIFT=step // dw if step % dw == 0 and step // dw < kw else kw)
    c16 = -(-c // 16) * 16
    tables = dict(w=pack(found["taps"], found["lanes"]), rq=found["rq"],
                  zrow=np.full(max(c16, 32), zx, np.int8))
    # the VNNI lanes: blocks of 32 channels (C = 8, 16: 32 / C pixels' channels), then 16
    vlanes = ([l % c for l in LANES32] if px > 1 else
              [32 * b + l for b in range(c // 32) for l in LANES32]
              + (list(range(32 * rb, 32 * rb + 16)) if half and rows else []))
    if vlanes:
        x_t, w_t, y_t = found["types"]
        tables.update(rqv=requant_records(x_t, w_t, y_t, found["folded"], vlanes,
                                          found["worst"])[0],
                      bv=vnni_bias(found["bias"], found["taps"], zx, vlanes))
    if c >= 32:
        tables["wv"] = pack_quads(found["taps"], vlanes[:32 * (c // 32)])
    if rows:  # per column kw its kh taps (padded to 4 with weight 0): one vpdpbusd group
        cols = np.zeros((4, kw, c), np.int64)
        cols[:kh] = found["taps"].reshape(kh, kw, c)
        cols = cols.transpose(1, 0, 2)  # [kw][4 rows][C]
        parts = [pack_quads(cols.reshape(4 * kw, c), vlanes[:32 * rb])] if rb else []
        if half:  # [kw][16 lanes][4 rows]
            parts.append(cols[:, :, 32 * rb:].transpose(0, 2, 1).reshape(-1).astype(np.int8))
        tables["wr"] = np.concatenate(parts)
    return Kernel("x86_qdepthwise.c.j2", context, [x.name, y.name], tables=tables,
                  needs=COMMON)
