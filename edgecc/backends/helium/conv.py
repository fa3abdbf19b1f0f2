"""int8 convolution with one group on Helium (MVE), generated per layer.

Takes a QConvNHWC with group 1 (any kernel, stride, dilation, padding) under cortex_m's
exactness conditions (``requantization``: worst |acc| < 2^30, right shifts 1..22). Per step,
four output channels x two pixels: each 16-byte chunk of the two pixels' patches is loaded
once and VMLADAVA.S8 (``vmladavaq_s8``) adds its 16 products with each of the four channels'
weight chunks into a scalar accumulator (16 instructions per 128 MACs). VMLADAVA accumulates
into even registers: GCC, given eight accumulators and a low-overhead loop (whose counter is
LR), moves them through the remaining ones (24 instructions per 128 MACs), so with GCC the
loop is inline assembly whose accumulators have GCC's even-register constraint "Te";
other compilers (or -DEDGECC_NO_INLINE_ASM) build the intrinsics. The last chunk of a
K not a multiple of 16 is loaded under a VCTP8 tail predicate (zeros past K). A pointwise
layer (1x1, stride 1, no padding) reads its pixels in place; any other gathers the two
patches (K = kh kw C bytes each, OHWI order) into the scratch with predicated 16-byte copies,
padding taps filled with the input zero point zx, whole rows of taps at once where they are
contiguous. The weights are re-laid at compile time as [M/4][K/16][4][16] (zero-filled to
a multiple of 4 channels), then the last K % 16 taps as [M/4][4][K % 16] (loaded under the
same predicate), read in that order. The second pixel's data is at a constant distance from
the first's (C in place, K16 in the scratch), so no per-pixel selection; an odd last pixel is
computed with the one before it (which is stored again, the same bytes), a layer of one pixel
alone.

The input offset folds into the bias: bias - zx sum_k w_k (padding reads zx). The four
accumulators go to one vector and are requantized together (``edgecc_hm_rq4``: VQRDMULH is
SRDHM exactly, then RDBP's round-half-away-from-zero as x - [x < 0] + 2^(e-1) + zy 2^e, a
VSHL right); the portable form computes each channel with the same integer math
(tests/test_helium_kernels.py checks both against the numpy model).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..cortex_m.conv import group1_layer
from ..generic.int8 import activation_bounds
from ..kernels import Kernel

SCRATCH_ALIGN = 16


def rq_tables(bias, m0, e, r) -> dict:
    """rq: per block of four channels, 4 biases, 4 multipliers, 4 r (int32); rsh: -e (int8);
    zero-filled to a multiple of 4 channels."""
    m = len(bias)
    m4 = -(-m // 4) * 4
    q = np.zeros((3, m4), np.int64)
    q[:, :m] = np.stack([bias, m0, r])
    sh = np.zeros(m4, np.int8)
    sh[:m] = -e
    return dict(rq=q.reshape(3, m4 // 4, 4).transpose(1, 0, 2).astype(np.int32).reshape(-1),
                rsh=sh)


def plan(graph, node) -> Optional[dict]:
    """The layer's compile-time facts when this kernel computes it, else None."""
    layer = group1_layer(graph, node)
    if layer is None:
        return None
    weights, bias, zx, (m0, e, r) = layer
    m, k = weights.shape
    k16, m4 = -(-k // 16) * 16, -(-m // 4) * 4
    w = np.zeros((m4, k16), np.int8)
    w[:m, :k] = weights
    w = w.reshape(m4 // 4, 4, k16 // 16, 16).transpose(0, 2, 1, 3)
    w = np.concatenate([w[:, :k // 16].reshape(m4 // 4, -1),  # full chunks, then the tail's
                        w[:, k // 16:, :, :k % 16].reshape(m4 // 4, -1)], axis=1).reshape(-1)
    a = node.attrs
    pointwise = tuple(a.kernel) == (1, 1) and tuple(a.strides) == (1, 1) and not any(a.pads)
    return dict(K=k, K16=k16, M=m, zx=zx, pointwise=pointwise,
                tables=dict(w=w, **rq_tables(bias - zx * weights.sum(axis=1), m0, e, r)))


def scratch(facts) -> int:
    need = 0 if facts["pointwise"] else 2 * facts["K16"]  # two pixels' patches
    return (need + SCRATCH_ALIGN - 1) // SCRATCH_ALIGN * SCRATCH_ALIGN


def layer_context(ctx, node) -> dict:
    """The template context every Helium convolution uses: tensors, shapes, kernel, strides,
    dilations, leading pads and the clamp."""
    a = node.attrs
    act_min, act_max = activation_bounds(a.activation, ctx.graph.types[node.outputs[0]])
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, m = y.shape
    return dict(x=x, y=y, N=n, H=h, W=w, C=c, OH=oh, OW=ow, M=m, KH=a.kernel[0], KW=a.kernel[1],
                SH=a.strides[0], SW=a.strides[1], DH=a.dilations[0], DW=a.dilations[1],
                PT=a.pads[0], PL=a.pads[1], act_min=act_min, act_max=act_max)


def layer_scalars(context, **more) -> dict:
    """What a Helium layer function shared by same-shape layers takes as arguments after its
    tables: the clamp bounds, then ``more``."""
    return dict(lo=context["act_min"], hi=context["act_max"], **more)


def emit(ctx, node):
    found = plan(ctx.graph, node)
    if found is None:
        return None
    c = layer_context(ctx, node)
    pointwise = found["pointwise"]
    scalars = layer_scalars(c, **({} if pointwise else dict(zx=found["zx"],
                                                             scratch=ctx.scratch(node))))
    return Kernel("hm_conv.c.j2", dict(
        c, P=c["N"] * c["OH"] * c["OW"], K=found["K"], K16=found["K16"], pointwise=pointwise),
        [c["x"].name, c["y"].name], tables=found["tables"], needs=("hm_mve.c.j2",),
        table_args=True, scalars=scalars)
