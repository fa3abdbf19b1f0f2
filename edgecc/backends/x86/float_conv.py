"""float32 2-D convolutions on AVX2 + FMA, NHWC, generated per layer (issue 13).

Takes a ConvNHWC (passes/layout_nhwc.py) with float32 input, output and constant weights
(and a constant bias or none), with one group or depthwise (group == C == M); the layout pass
converts exactly those Convs (``takes``, registered with ``@accepts("Conv")``), so no other
ConvNHWC exists. Any kernel size, stride, dilation and padding (per side).

    y[n, oy, ox, m] = act(b[m] + sum_{ky, kx, c} x[n, iy, ix, c] w[m, ky, kx, c]),
    iy = oy SH - PT + ky DH,  ix = ox SW - PL + kx DW   (taps outside the input add nothing)

One group (``x86_conv.c.j2``): a direct convolution, register-blocked. The M outputs are cut
into blocks of 8 (one __m256; the last one zero-padded in the weights and stored with a mask,
so M need not be a multiple of 8), grouped in chunks of NB = 3 blocks (2 + 2 rather than a
last 3 + 1: ``chunk_sizes``); the weights are packed at compile time chunk by chunk as
[chunk][kh][kw][C][NB 8], the order the micro-kernel reads them. The micro-kernel keeps PX output pixels x NB blocks of accumulators in registers
(NB = 3: 3-4 x 3; NB = 2: 4-6 x 2; NB = 1: 8-12 x 1, at most 12 of the 16 ymm registers, PX
chosen per layer so that the row splits with the least waste: ``tile_width``), and per
tap and input channel broadcasts one input value per pixel and adds its product with the NB
weight vectors (_mm256_fmadd_ps). Tiles whose windows lie inside the input along W run
without bounds checks (with DW = 1 a row of the window, KW C values, is contiguous in both
the input and the packed weights: one loop); a tile touching a border (and the row's last,
narrower tile) reads each pixel's tap through its own pointer, to the input or, for a tap
outside it, to a row of C zeros. Window rows outside the input are skipped. A 1x1
convolution with stride 1 and no padding is a matrix product [N H W, C] x [C, M]: its pixels
run as one row. The weight vectors stay in registers (EDGECC_IN_REGISTER, x86_float.c.j2).

Depthwise (``x86_depthwise.c.j2``): vectorized over channels. The weights are packed as
[kh kw][C'] (C' = C rounded up to 8, zero-filled), the bias as [C']; per output pixel the
channels run in groups of up to 4 blocks of 8 (independent accumulators), taps outside the
input skipped (checked only for border pixels); a channel tail (C not a multiple of 8) is read
and stored with masks (no read past the tensor), in the last group. With few channels
(C' < 32) interior pixels run several at a time.

Epilogue: the bias is the accumulators' start; a residual input r (a 4th input, which
passes/layout_nhwc.py fuses from Add(conv, r) into one-group layers) is added to the sums,
then the activation, so y = act(conv + b + r); Relu (max(0, v)) and Clip (max with lo, then
min with hi) are applied in registers before the store, keeping NaN as the portable C does
(vmaxps/vminps return the second operand when one is NaN: the accumulator). Any other fused
activation is applied after the layer by a scalar loop over the output with the portable
kernels' expression (generic/elementwise.activation_expr).

Accuracy: the sums run in a different order than onnxruntime's (and with fused multiply-adds),
within float32 rounding; tests/test_x86_float_kernels.py checks 1e-4 of the largest output.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir import DType
from ..codegen import c_literal
from ..generic.elementwise import activation_expr
from ..kernels import Kernel, kernel
from ..layout_rule import FOLLOWS_NHWC, float_average_pool, float_follows_nhwc
from .layout import accepts

COMMON = ("x86_common.c.j2",)  # = backends/x86.COMMON (not imported: circular)
FLOAT = COMMON + ("x86_float.c.j2",)  # and EDGECC_IN_REGISTER
# blocks per chunk -> the tile widths (pixels) tried; nb x px <= 12 accumulators
TILES = {3: (4, 3), 2: (6, 5, 4), 1: (12, 10, 8)}
DW_GROUP = 4  # depthwise: channel blocks of 8 per group


def _kind(graph, node, nhwc: bool) -> Optional[str]:
    """"dense" (one group), "depthwise" (group == C == M) or None: what the kernels take."""
    if len(node.inputs) < 2 or len(node.attrs.kernel) != 2:
        return None
    x_t, w_t, y_t = (graph.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if (any(t.dtype != DType.FLOAT32 or t.rank != 4 for t in (x_t, w_t, y_t))
            or node.inputs[1] not in graph.constants
            or (bias is not None and (bias not in graph.constants
                                      or graph.types[bias].dtype != DType.FLOAT32))):
        return None
    residual = node.inputs[3] if len(node.inputs) > 3 and node.inputs[3] else None
    if residual is not None and (not nhwc or graph.types[residual].dtype != DType.FLOAT32
                                 or graph.types[residual].shape != y_t.shape):
        return None
    c, m = (x_t.shape[3], y_t.shape[3]) if nhwc else (x_t.shape[1], y_t.shape[1])
    group = node.attrs.group
    if group == 1:
        return "dense"
    if residual is not None:  # passes/layout_nhwc.py fuses residuals into one group only
        return None
    per_group = w_t.shape[0] if nhwc else w_t.shape[1]  # 1HWM vs [M, C/g, kh, kw]
    if group == c == m and per_group == 1:
        return "depthwise"
    return None


@accepts("Conv")
def takes(graph, node) -> bool:
    """The NCHW Convs whose ConvNHWC the kernels below compute."""
    return node.op == "Conv" and _kind(graph, node, nhwc=False) is not None


# float pointwise ops and global average pools go NHWC with the convolutions
accepts(*FOLLOWS_NHWC)(float_follows_nhwc)
accepts("AveragePool")(float_average_pool)


def epilogue(node, dtype=DType.FLOAT32) -> dict:
    """The activation as the templates apply it: ``vector`` = "relu", "clip" (with ``lo``,
    ``hi`` C literals or None when that bound cannot clip) or None; ``post``: the scalar C
    expression of any other activation over ``v``, applied after the layer, or None."""
    act = node.attrs.activation
    if act is None:
        return dict(vector=None, lo=None, hi=None, post=None)
    if act.kind == "Relu":
        return dict(vector="relu", lo=None, hi=None, post=None)
    if act.kind == "Clip":
        lo = None if act.alpha is None or float(act.alpha) == float("-inf") else act.alpha
        hi = None if act.beta is None or float(act.beta) == float("inf") else act.beta
        return dict(vector="clip", lo=None if lo is None else c_literal(lo, dtype),
                    hi=None if hi is None else c_literal(hi, dtype), post=None)
    return dict(vector=None, lo=None, hi=None,
                post=activation_expr(act.kind, "v", dtype, act.alpha, act.beta))


def _interior(out_size, in_size, stride, pad, kernel_size, dilation):
    """[lo, hi): the outputs whose window lies inside the input along one axis."""
    lo = min(out_size, -(-pad // stride))
    last = in_size - 1 - (kernel_size - 1) * dilation + pad  # o stride <= last
    hi = min(out_size, last // stride + 1) if last >= 0 else 0
    return lo, max(lo, hi)


def _geometry(graph, node) -> dict:
    a = node.attrs
    n, h, w, c = graph.types[node.inputs[0]].shape
    _, oh, ow, m = graph.types[node.outputs[0]].shape
    g = dict(N=n, H=h, W=w, C=c, OH=oh, OW=ow, M=m, KH=a.kernel[0], KW=a.kernel[1],
             SH=a.strides[0], SW=a.strides[1], DH=a.dilations[0], DW=a.dilations[1],
             PT=a.pads[0], PL=a.pads[1], PB=a.pads[2], PR=a.pads[3])
    if (g["KH"], g["KW"], g["SH"], g["SW"]) == (1, 1, 1, 1) and not any(a.pads):
        # pointwise: the N H W pixels are one row of a matrix product
        g.update(N=1, H=1, W=n * h * w, OH=1, OW=n * oh * ow, DH=1, DW=1)
    g["OX0"], g["OX1"] = _interior(g["OW"], g["W"], g["SW"], g["PL"], g["KW"], g["DW"])
    # whether a tap's row can fall outside the input (top or bottom padding)
    g["check_h"] = bool(g["PT"] or (g["OH"] - 1) * g["SH"] + (g["KH"] - 1) * g["DH"] >= g["H"])
    return g


def tile_width(nb: int, width: int) -> int:
    """The pixels per tile for chunks of ``nb`` blocks along a row of ``width`` outputs: the
    least FMA issue slots, counting a tile of fewer than 8 accumulators as 8 (two FMA pipes of
    latency 4 need 8 independent sums) and the row's remainder as one narrower tile, 1.5 times
    (it runs the bounds-checked path)."""
    def cost(px):
        rem = width % px
        return (width // px) * max(px * nb, 8) + (1.5 * max(rem * nb, 8) if rem else 0)
    return min(TILES[nb], key=lambda px: (cost(px), -px))


def _bias(graph, node, size: int) -> np.ndarray:
    b = np.zeros(size, np.float32)
    if len(node.inputs) > 2 and node.inputs[2]:
        values = graph.constants[node.inputs[2]].astype(np.float32).reshape(-1)
        b[:len(values)] = values
    return b


def _tail_mask(count: int) -> str:
    """_mm256_setr_epi32 arguments selecting the first ``count`` of 8 lanes."""
    return ", ".join("-1" if i < count else "0" for i in range(8))


def chunk_sizes(blocks: int):
    """Blocks of 8 outputs per chunk: chunks of 3, with 2 + 2 instead of a last 3 + 1."""
    sizes = [3] * (blocks // 3) + ([blocks % 3] if blocks % 3 else [])
    if len(sizes) >= 2 and sizes[-1] == 1:
        sizes[-2:] = [2, 2]
    return sizes


def _segments(g, sizes, masked: bool):
    """Runs of equal chunks, as the template loops over them: first block, chunk count, blocks
    per chunk, tile width PX, the row's remainder REM, whether tiles inside the input (fast)
    and touching a border (slow) occur, and whether the run's chunk holds the masked last
    block (then it is alone in its run)."""
    runs, block = [], 0
    for k, nb in enumerate(sizes):
        last = masked and k == len(sizes) - 1
        if runs and runs[-1]["nb"] == nb and not last:
            runs[-1]["count"] += 1
        else:
            px = tile_width(nb, g["OW"])
            tiles = range(0, g["OW"] - px + 1, px)
            inside = [g["OX0"] <= ox and ox + px <= g["OX1"] for ox in tiles]
            runs.append(dict(block=block, count=1, nb=nb, px=px, rem=g["OW"] % px,
                             fast=any(inside), slow=not all(inside), masked=last))
        block += nb
    return runs


def dense(ctx, node) -> Kernel:
    """x86_conv.c.j2 for a one-group ConvNHWC (see the module's docstring)."""
    graph = ctx.graph
    g = _geometry(graph, node)
    m, taps = g["M"], g["KH"] * g["KW"] * g["C"]
    residual = node.inputs[3] if len(node.inputs) > 3 and node.inputs[3] else None
    mb = -(-m // 8)
    sizes = chunk_sizes(mb)
    w = graph.constants[node.inputs[1]].astype(np.float32).reshape(m, taps)  # OHWI rows
    wpad = np.zeros((mb * 8, taps), np.float32)
    wpad[:m] = w
    # chunk by chunk [tap][blocks of the chunk x 8]: a chunk from output m0 starts at taps m0
    starts = np.cumsum([0] + sizes) * 8
    packed = np.concatenate([wpad[a:b].T.reshape(-1) for a, b in zip(starts, starts[1:])])
    last = m - (mb - 1) * 8
    segments = _segments(g, sizes, last != 8)
    return Kernel("x86_conv.c.j2", dict(
        g, TAPS=taps, segments=segments, last=last, mask=_tail_mask(last), residual=residual,
        borders=any(s["slow"] or s["rem"] for s in segments), **epilogue(node)),
        [node.inputs[0], *([residual] if residual else []), node.outputs[0]],
        tables=dict(w=packed, b=_bias(graph, node, mb * 8)), needs=FLOAT)


def depthwise(ctx, node) -> Kernel:
    """x86_depthwise.c.j2 for a depthwise ConvNHWC (see the module's docstring)."""
    graph = ctx.graph
    g = _geometry(graph, node)
    c, kh, kw = g["C"], g["KH"], g["KW"]
    cb = -(-c // 8)
    w = graph.constants[node.inputs[1]].astype(np.float32).reshape(kh * kw, c)  # 1HWC
    wpad = np.zeros((kh * kw, cb * 8), np.float32)
    wpad[:, :c] = w
    full, tail = divmod(cb, DW_GROUP)
    if c % 8 and not tail:  # the masked block goes in the last (tail) group
        full, tail = full - 1, DW_GROUP
    px = max(1, DW_GROUP // cb)  # few channels: several pixels per step
    interior = g["OX1"] - g["OX0"]
    return Kernel("x86_depthwise.c.j2", dict(
        g, CP=cb * 8, CB=cb, G=DW_GROUP, FULL=full, TAIL=tail, PX=px, REM=interior % px,
        masked=c % 8 != 0, mask=_tail_mask(c % 8), **epilogue(node)),
        [node.inputs[0], node.outputs[0]],
        tables=dict(w=wpad.reshape(-1), b=_bias(graph, node, cb * 8)), needs=FLOAT)


@kernel("ConvNHWC")
def conv_nhwc(ctx, node):
    kind = _kind(ctx.graph, node, nhwc=True)
    if kind == "dense":
        return dense(ctx, node)
    if kind == "depthwise":
        return depthwise(ctx, node)
    return None
