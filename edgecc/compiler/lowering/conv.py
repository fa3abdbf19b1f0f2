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


@dataclass(frozen=True)
class ConvTransposeAttrs:
    kernel: Tuple[int, ...]
    strides: Tuple[int, ...]
    pads: Tuple[int, ...]          # begin per spatial axis, then end per spatial axis
    dilations: Tuple[int, ...]
    group: int = 1
    activation: Optional[Activation] = None


def _conv_macs(graph: Graph, node: Node) -> int:
    w = graph.types[node.inputs[1]].shape
    y = graph.types[node.outputs[0]].shape
    return int(np.prod(y)) * int(np.prod(w[1:]))


def _convt_macs(graph: Graph, node: Node) -> int:
    w = graph.types[node.inputs[1]].shape
    x = graph.types[node.inputs[0]].shape
    return int(np.prod(x)) * int(np.prod(w[1:]))


ir_op("Conv", macs=_conv_macs)
ir_op("ConvTranspose", macs=_convt_macs)


def _auto_pads(ctx, in_sp, out_sp, kernel, strides, dilations):
    mode = ctx.attr("auto_pad", b"NOTSET").decode()
    nsp = len(kernel)
    if mode in ("NOTSET",):
        pads = ctx.attr("pads", [0] * (2 * nsp))
        return tuple(int(p) for p in pads)
    if mode == "VALID":
        return (0,) * (2 * nsp)
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
    pads = _auto_pads(ctx, x_t.shape[2:], y_t.shape[2:], kernel, strides, dilations)
    attrs = ConvAttrs(kernel, strides, pads, dilations, int(ctx.attr("group", 1)))
    ctx.emit("Conv", list(node.input[:3]), [node.output[0]], attrs)


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
    mode = ctx.attr("auto_pad", b"NOTSET").decode()
    explicit = ctx.attr("pads", None)
    if explicit is not None and mode == "NOTSET":
        pads = tuple(int(p) for p in explicit)
    else:
        # total padding implied by the inferred output shape (covers output_shape and SAME_*)
        begin, end = [], []
        for i in range(nsp):
            full = (strides[i] * (x_t.shape[2 + i] - 1) + out_pad[i]
                    + (kernel[i] - 1) * dilations[i] + 1)
            total = max(0, full - y_t.shape[2 + i])
            b = total // 2 if mode == "SAME_UPPER" else total - total // 2
            begin.append(b)
            end.append(total - b)
        pads = tuple(begin + end)
    attrs = ConvTransposeAttrs(kernel, strides, pads, dilations, int(ctx.attr("group", 1)))
    ctx.emit("ConvTranspose", list(node.input[:3]), [node.output[0]], attrs)
