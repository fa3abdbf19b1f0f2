"""float32 2-D convolutions on NEON (FMLA), NHWC, generated per layer.

Takes a ConvNHWC (passes/layout_nhwc.py) with float32 input, output and constant weights (and a
constant bias or none), with one group or depthwise (group = C = M), any kernel size, stride,
dilation and padding; the layout pass converts exactly those Convs (``takes``), so no other
float ConvNHWC exists.

    y[n, oy, ox, m] = act(b[m] + sum_{ky, kx, c} x[n, iy, ix, c] w[m, ky, kx, c] (+ r)),
    iy = oy SH - PT + ky DH,  ix = ox SW - PL + kx DW   (taps outside the input add nothing)

Per block of PB = 4 output pixels their patches (K = kh kw C values, K padded to K4, a multiple
of 4, with zeros; a tap outside the input reads zeros; a 1x1 stride-1 layer with C % 4 == 0
reads its input rows in place), then per block of 8 output channels 4 x 2 float32x4
accumulators starting at the bias, and per 4 patch values k..k+3 of each pixel one vector load
and 8 FMLA by element (vfmaq_laneq_f32) against the two weight vectors of each k: weights are
packed at compile time as [M / 8 blocks][K4][8] (zero-padded), the order the loop reads them.
A channel tail (M % 8) is stored through a buffer.

Depthwise (``neon_depthwise.c.j2``): per output pixel and vector of 4 channels, the bias then
one FMLA per tap inside the input (taps outside add nothing; an interior pixel's taps run
unrolled at constant offsets); weights packed as [kh kw][C4] (C rounded up to 4, zeros); a
channel tail (C % 4) is read and stored through 4-float buffers.

Epilogue: a residual input r (a 4th input, fused by passes/layout_nhwc.py from Add(conv, r)) is
added to the sums, then the activation: Relu as vmaxq_f32(v, 0) and Clip as vmaxq / vminq in
registers (FMAX / FMIN return NaN for a NaN operand, as the portable clamp keeps it); any other
fused activation runs after the layer over the output with the portable kernels' expression
(generic/elementwise.activation_expr).

Accuracy: the sums run in another order than onnxruntime's, with fused multiply-adds, within
float32 rounding; the tests check 1e-4 of the largest output.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ..codegen import c_literal
from ..generic.elementwise import activation_expr
from ..kernels import Kernel, kernel
from ..layout_rule import FOLLOWS_NHWC, float_average_pool, float_follows_nhwc
from .layout import accepts

COMMON = ("neon_common.c.j2",)
PB = 4          # output pixels per block
MAX_K = 4096    # patch length (PB patches of K4 floats on the stack: 64 KiB)


def dense(graph, node, nhwc: bool) -> bool:
    """A float32 one-group 2-D Conv(NHWC) with constant weights and a constant bias or none."""
    if len(node.inputs) < 2 or len(node.attrs.kernel) != 2 or node.attrs.group != 1:
        return False
    x_t, w_t, y_t = (graph.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if (any(t.dtype != DType.FLOAT32 or t.rank != 4 for t in (x_t, w_t, y_t))
            or node.inputs[1] not in graph.constants
            or (bias is not None and (bias not in graph.constants
                                      or graph.types[bias].dtype != DType.FLOAT32))):
        return False
    residual = node.inputs[3] if len(node.inputs) > 3 and node.inputs[3] else None
    if residual is not None and (not nhwc or graph.types[residual].shape != y_t.shape
                                 or graph.types[residual].dtype != DType.FLOAT32):
        return False
    return int(np.prod(w_t.shape[1:])) <= MAX_K


def depthwise(graph, node, nhwc: bool) -> bool:
    """A float32 depthwise 2-D Conv(NHWC) (group = C = M) with constant weights, a constant
    bias or none, and no residual input."""
    if len(node.inputs) < 2 or len(node.attrs.kernel) != 2 or node.attrs.group == 1:
        return False
    if len(node.inputs) > 3 and node.inputs[3]:
        return False
    x_t, w_t, y_t = (graph.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if (any(t.dtype != DType.FLOAT32 or t.rank != 4 for t in (x_t, w_t, y_t))
            or node.inputs[1] not in graph.constants
            or (bias is not None and (bias not in graph.constants
                                      or graph.types[bias].dtype != DType.FLOAT32))):
        return False
    c, m = (x_t.shape[3], y_t.shape[3]) if nhwc else (x_t.shape[1], y_t.shape[1])
    per_group = w_t.shape[0] if nhwc else w_t.shape[1]  # 1HWM vs [M, 1, kh, kw]
    return node.attrs.group == c == m and per_group == 1


@accepts("Conv")
def takes(graph, node) -> bool:
    return node.op == "Conv" and (dense(graph, node, nhwc=False)
                                  or depthwise(graph, node, nhwc=False))


# float pointwise ops and global average pools go NHWC with the convolutions
accepts(*FOLLOWS_NHWC)(float_follows_nhwc)
accepts("AveragePool")(float_average_pool)


def epilogue(node) -> dict:
    """``vector``: "relu", "clip" (``lo``/``hi`` C literals, None: no bound) or None; ``post``:
    the scalar C expression of any other activation over ``v``, applied after the layer."""
    act = getattr(node.attrs, "activation", None)
    none = dict(vector=None, lo=None, hi=None, post=None)
    if act is None:
        return none
    if act.kind == "Relu":
        return dict(none, vector="relu")
    if act.kind == "Clip":
        lo = None if act.alpha is None or float(act.alpha) == float("-inf") else act.alpha
        hi = None if act.beta is None or float(act.beta) == float("inf") else act.beta
        return dict(none, vector="clip", lo=None if lo is None else c_literal(lo, DType.FLOAT32),
                    hi=None if hi is None else c_literal(hi, DType.FLOAT32))
    return dict(none, post=activation_expr(act.kind, "v", DType.FLOAT32, act.alpha, act.beta))


def pack_weights(weights: np.ndarray) -> np.ndarray:
    """float32 [M / 8 blocks][K4][8]: weights [M, K] zero-padded."""
    m, k = weights.shape
    mb, k4 = -(-m // 8), -(-k // 4) * 4
    wp = np.zeros((mb * 8, k4), np.float32)
    wp[:m, :k] = weights
    return np.ascontiguousarray(wp.reshape(mb, 8, k4).transpose(0, 2, 1)).reshape(-1)


def depthwise_kernel(ctx, node) -> Kernel:
    """Depthwise: per output pixel and vector of 4 channels, FMLA per tap inside the input."""
    g, a = ctx.graph, node.attrs
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    c4 = -(-c // 4) * 4
    taps = a.kernel[0] * a.kernel[1]
    packed = np.zeros((taps, c4), np.float32)
    packed[:, :c] = g.constants[node.inputs[1]].astype(np.float32).reshape(taps, c)  # 1HWM
    bias = np.zeros(c4, np.float32)
    if len(node.inputs) > 2 and node.inputs[2]:
        bias[:c] = g.constants[node.inputs[2]].astype(np.float32).reshape(c)
    context = dict(N=n, OH=oh, OW=ow, H=h, W=w, C=c, C4=c4, NV=c // 4, TAIL=c % 4,
                   KH=a.kernel[0], KW=a.kernel[1], SH=a.strides[0], SW=a.strides[1],
                   DH=a.dilations[0], DW=a.dilations[1], PT=a.pads[0], PL=a.pads[1],
                   **epilogue(node))
    return Kernel("neon_depthwise.c.j2", context, [x.name, y.name],
                  tables=dict(w=packed.reshape(-1), b=bias), needs=COMMON)


@kernel("ConvNHWC")
def conv_nhwc(ctx, node):
    g = ctx.graph
    if depthwise(g, node, nhwc=True):
        return depthwise_kernel(ctx, node)
    if not dense(g, node, nhwc=True):
        return None
    a = node.attrs
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, m = y.shape
    weights = g.constants[node.inputs[1]].astype(np.float32).reshape(m, -1)  # OHWI
    bias = np.zeros(m, np.float32)
    if len(node.inputs) > 2 and node.inputs[2]:
        bias = g.constants[node.inputs[2]].astype(np.float32).reshape(m)
    residual = node.inputs[3] if len(node.inputs) > 3 and node.inputs[3] else None
    geometry = dict(N=n, OH=oh, OW=ow, H=h, W=w, C=c, KH=a.kernel[0], KW=a.kernel[1],
                    SH=a.strides[0], SW=a.strides[1], DH=a.dilations[0], DW=a.dilations[1],
                    PT=a.pads[0], PL=a.pads[1])
    args = [x.name] + ([ctx.view(residual).name] if residual else []) + [y.name]
    return dense_kernel(weights, bias, geometry, epilogue(node), args, residual is not None)


def dense_kernel(weights: np.ndarray, bias: np.ndarray, geometry: dict, act: dict, args,
                 residual: bool = False) -> Kernel:
    """neon_conv.c.j2 for weights [M, K] (OHWI order), bias [M] over ``geometry`` (N, OH, OW,
    H, W, C, KH, KW, SH, SW, DH, DW, PT, PL: NHWC) with the activation ``act`` (epilogue)."""
    g = geometry
    m, k = weights.shape
    k4 = -(-k // 4) * 4
    mb = -(-m // 8)
    b = np.zeros(mb * 8, np.float32)
    b[:m] = bias
    contiguous = ((g["KH"], g["KW"], g["SH"], g["SW"], g["PT"], g["PL"]) == (1, 1, 1, 1, 0, 0)
                  and g["H"] == g["OH"] and g["W"] == g["OW"] and k == k4)
    p_all = g["N"] * g["OH"] * g["OW"]
    context = dict(g, P=p_all, M=m, MB=mb, K=k, K4=k4, PB=min(PB, p_all),
                   CONTIGUOUS=contiguous, RESIDUAL=residual, **act)
    return Kernel("neon_conv.c.j2", context, args,
                  tables=dict(w=pack_weights(weights), b=b), needs=COMMON)
