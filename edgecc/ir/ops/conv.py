"""IR ops: Conv and ConvTranspose (explicit pads, N-d, grouped, dilated).

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/conv.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .. import Activation, Graph, Node
from ..registry import ir_op


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
            or x_t.dtype.bits != y_t.dtype.bits or x_t.dtype.packed):
        return None
    channels = x_t.shape[1]
    if not (node.attrs.group == channels == y_t.shape[1] and w_t.shape[1] == 1):
        return None
    if y_t.shape[0] != x_t.shape[0] or y_t.shape[2] * y_t.shape[3] > x_t.shape[2] * x_t.shape[3]:
        return None
    return y_t.shape[2] * y_t.shape[3] * y_t.dtype.itemsize


INDEX_LIMIT = 1 << 30  # offsets up to twice this fit the C's 32-bit index arithmetic


def check_conv(graph: Graph, node: Node) -> Optional[str]:
    """NC[spatial] input, weights [M, C/group, kernel...]: positive strides and dilations,
    non-negative pads, a group dividing both channel counts, and the output size the
    attributes give."""
    x_t, w_t, y_t = (graph.types[t] for t in (node.inputs[0], node.inputs[1], node.outputs[0]))
    a = node.attrs
    nsp = len(a.kernel)
    if x_t.rank != nsp + 2 or w_t.rank != nsp + 2 or y_t.rank != nsp + 2:
        return f"input, weight and output need {nsp + 2} dims"
    if tuple(w_t.shape[2:]) != tuple(a.kernel):
        return f"kernel_shape {list(a.kernel)} differs from the weight's {list(w_t.shape[2:])}"
    if min(x_t.shape + w_t.shape, default=1) < 1:
        return "input and weight must not be empty"
    if len(a.strides) != nsp or min(a.strides) < 1:
        return f"strides {list(a.strides)} must be {nsp} values >= 1"
    if len(a.dilations) != nsp or min(a.dilations) < 1:
        return f"dilations {list(a.dilations)} must be {nsp} values >= 1"
    if len(a.pads) != 2 * nsp or min(a.pads) < 0:
        return f"pads {list(a.pads)} must be {2 * nsp} values >= 0"
    if a.group < 1 or x_t.shape[1] % a.group or w_t.shape[0] % a.group:
        return (f"group {a.group} must divide the {x_t.shape[1]} input and {w_t.shape[0]} "
                "output channels")
    if len(node.inputs) > 2 and node.inputs[2] and \
            graph.types[node.inputs[2]].shape != (w_t.shape[0],):
        return (f"bias {list(graph.types[node.inputs[2]].shape)} must be [{w_t.shape[0]}] "
                "(one per output channel)")
    if w_t.shape[1] * a.group != x_t.shape[1]:
        return (f"the weight's {w_t.shape[1]} input channels x group {a.group} != the input's "
                f"{x_t.shape[1]}")
    padded = [x_t.shape[2 + i] + a.pads[i] + a.pads[nsp + i] for i in range(nsp)]
    if max(padded) > INDEX_LIMIT or max(a.strides) > INDEX_LIMIT or \
            max((k - 1) * d for k, d in zip(a.kernel, a.dilations)) > INDEX_LIMIT:
        return (f"padded input {padded}, strides {list(a.strides)} or dilations "
                f"{list(a.dilations)} exceed {INDEX_LIMIT}, the limit of generated index "
                "arithmetic")
    want = [(x_t.shape[2 + i] + a.pads[i] + a.pads[nsp + i] - (a.kernel[i] - 1) * a.dilations[i]
             - 1) // a.strides[i] + 1 for i in range(nsp)]
    if (min(want) < 1 or list(y_t.shape[2:]) != want
            or tuple(y_t.shape[:2]) != (x_t.shape[0], w_t.shape[0])):
        return f"output {list(y_t.shape)} is not what the attributes give ({want} spatial)"
    return None


ir_op("Conv", macs=_conv_macs, inplace_scratch=depthwise_inplace_scratch,
      check=check_conv)


ir_op("ConvTranspose", macs=_convt_macs)


def _nhwc_conv_macs(graph: Graph, node: Node) -> int:
    """output elements x kh x kw x input channels per group (NHWC, weights OHWI or 1HWM)."""
    y = graph.types[node.outputs[0]].shape
    c_in = graph.types[node.inputs[0]].shape[3]
    kh, kw = node.attrs.kernel
    return int(np.prod(y)) * kh * kw * (c_in // node.attrs.group)


# A float 2-D Conv in NHWC (input [N, H, W, C], output [N, OH, OW, M]; weights OHWI with one
# group, [1, kh, kw, C] depthwise; ConvAttrs as Conv's): created by passes/layout_nhwc.py for
# the nodes an x86-avx2 kernel takes (backends/x86/float_conv.py). An optional fourth input
# r (the output's shape; the bias may then be "") is a residual: y = act(conv(x) + b + r).
ir_op("ConvNHWC", macs=_nhwc_conv_macs)
