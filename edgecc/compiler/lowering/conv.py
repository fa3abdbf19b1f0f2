"""Conv and ConvTranspose: explicit pads (auto_pad resolved), N-d, grouped, dilated."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ...ir import Activation, Graph, Node
from ..registry import ir_op, lowering


@dataclass(frozen=True)
class ConvAttrs:
    kernel: Tuple[int, ...]
    strides: Tuple[int, ...]
    pads: Tuple[int, ...]          # begin per spatial axis, then end per spatial axis
    dilations: Tuple[int, ...]
    group: int = 1
    activation: Optional[Activation] = None


class ConvTransposeAttrs(ConvAttrs):
    """The same fields as ConvAttrs; the weight is laid out (C_in, M / group, k...)."""


def _conv_macs(graph: Graph, node: Node) -> int:
    w = graph.types[node.inputs[1]].shape
    y = graph.types[node.outputs[0]].shape
    return int(np.prod(y)) * int(np.prod(w[1:]))


def _convt_macs(graph: Graph, node: Node) -> int:
    w = graph.types[node.inputs[1]].shape
    x = graph.types[node.inputs[0]].shape
    return int(np.prod(x)) * int(np.prod(w[1:]))


def depthwise_inplace_scratch(graph: Graph, node: Node) -> Optional[int]:
    """Scratch bytes (one output channel plane) of the in-place variant of a 2-D NCHW
    depthwise convolution (group == C_in == C_out), or None when it cannot run in place.

    The variant computes output plane k (of N * C) into the scratch, reading only input plane
    k, then copies it to output plane k's place in the shared buffer. With P = H * W input and
    Q = H_out * W_out output elements per plane, Q <= P and equal element sizes, planes run
    in increasing k: before step k the writes cover [0, k * Q) which lies below input plane k's
    [k * P, (k + 1) * P), so plane k is still intact when read; step k writes
    [k * Q, (k + 1) * Q), below (k + 1) * P, i.e. only over input planes <= k, none of which is
    read again. So the result equals the out-of-place convolution for any stride, padding
    (also per side, as on patch tiles) and dilation."""
    x_t, w_t, y_t = (graph.types[t] for t in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if (len(node.attrs.kernel) != 2 or x_t.rank != 4 or y_t.rank != 4
            or x_t.dtype.itemsize != y_t.dtype.itemsize):
        return None
    channels = x_t.shape[1]
    if not (node.attrs.group == channels == y_t.shape[1] and w_t.shape[1] == 1):
        return None
    if y_t.shape[0] != x_t.shape[0] or y_t.shape[2] * y_t.shape[3] > x_t.shape[2] * x_t.shape[3]:
        return None
    return y_t.shape[2] * y_t.shape[3] * y_t.dtype.itemsize


ir_op("Conv", macs=_conv_macs, inplace_scratch=depthwise_inplace_scratch)
ir_op("ConvTranspose", macs=_convt_macs)


def explicit_pads(ctx, in_sp, out_sp, kernel, strides, dilations):
    """Pads (begins, then ends) with auto_pad resolved, as ONNX defines SAME_UPPER/LOWER."""
    mode = ctx.attr("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    nsp = len(kernel)
    if mode == "NOTSET":
        return tuple(int(p) for p in ctx.attr("pads", [0] * (2 * nsp)))
    if mode == "VALID":
        return (0,) * (2 * nsp)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.error(f"unknown auto_pad '{mode}'")
    begin, end = [], []
    for i in range(nsp):
        eff_k = (kernel[i] - 1) * dilations[i] + 1
        total = max(0, (out_sp[i] - 1) * strides[i] + eff_k - in_sp[i])
        small, big = total // 2, total - total // 2
        begin.append(big if mode == "SAME_LOWER" else small)
        end.append(small if mode == "SAME_LOWER" else big)
    return tuple(begin + end)


@lowering("Conv")
def lower_conv(ctx, node):
    x_t = ctx.type(node.input[0])
    w_t = ctx.type(node.input[1])
    y_t = ctx.type(node.output[0])
    if not x_t.dtype.is_float:
        raise ctx.error(f"Conv on {x_t.dtype.name.lower()} is not supported")
    nsp = x_t.rank - 2
    if nsp < 1 or nsp > 3:
        raise ctx.error(f"Conv with {nsp} spatial dims is not supported (1 to 3)")
    kernel = tuple(ctx.attr("kernel_shape", w_t.shape[2:]))
    strides = tuple(ctx.attr("strides", [1] * nsp))
    dilations = tuple(ctx.attr("dilations", [1] * nsp))
    pads = explicit_pads(ctx, x_t.shape[2:], y_t.shape[2:], kernel, strides, dilations)
    attrs = ConvAttrs(kernel, strides, pads, dilations, int(ctx.attr("group", 1)))
    ctx.emit("Conv", list(node.input[:3]), [node.output[0]], attrs)


def _transpose_pads(ctx, in_sp, out_sp, kernel, strides, dilations, out_pad):
    """Begin/end pads of a ConvTranspose (ONNX spec, as onnxruntime applies it).

    The full (unpadded) output along an axis has
        full = S * (in - 1) + output_padding + (K - 1) * D + 1
    elements; output element o is full element o + pad_begin. With explicit ``pads`` the
    output has full - pad_begin - pad_end elements. When ``output_shape`` is given (it wins
    over ``pads``) or auto_pad is SAME_*, the total pad is full - out, split in half with the
    odd element at the end for SAME_UPPER and at the beginning otherwise. A negative total
    (output larger than full) pads nothing: the extra elements at the end get only the bias.
    """
    nsp = len(kernel)
    mode = ctx.attr("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    explicit = ctx.attr("pads", None)
    if ctx.attr("output_shape", None) is None and mode not in ("SAME_UPPER", "SAME_LOWER"):
        pads = tuple(int(p) for p in (explicit if explicit is not None else [0] * 2 * nsp))
        if len(pads) != 2 * nsp:
            raise ctx.error(f"pads has {len(pads)} values, expected {2 * nsp}")
        return pads
    begin, end = [], []
    for i in range(nsp):
        full = (strides[i] * (in_sp[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1)
        total = max(0, full - out_sp[i])
        b = total // 2 if mode == "SAME_UPPER" else total - total // 2
        begin.append(b)
        end.append(total - b)
    return tuple(begin + end)


@lowering("ConvTranspose")
def lower_conv_transpose(ctx, node):
    x_t = ctx.type(node.input[0])
    w_t = ctx.type(node.input[1])
    y_t = ctx.type(node.output[0])
    nsp = x_t.rank - 2
    if not x_t.dtype.is_float or nsp < 1 or nsp > 3:
        raise ctx.error("ConvTranspose supports float tensors with 1 to 3 spatial dims")
    kernel = tuple(ctx.attr("kernel_shape", w_t.shape[2:]))
    strides = tuple(ctx.attr("strides", [1] * nsp))
    dilations = tuple(ctx.attr("dilations", [1] * nsp))
    out_pad = tuple(ctx.attr("output_padding", [0] * nsp))
    pads = _transpose_pads(ctx, x_t.shape[2:], y_t.shape[2:], kernel, strides, dilations,
                           out_pad)
    attrs = ConvTransposeAttrs(kernel, strides, pads, dilations, int(ctx.attr("group", 1)))
    ctx.emit("ConvTranspose", list(node.input[:3]), [node.output[0]], attrs)
