"""Low-bit IR ops, created by passes/lower_bits.py; edgecc/ir/lowbit.py defines the bit-plane
storage and the math. A packed tensor (DType.packed: int4, uint4, int2, uint2, binary) is NHWC
(or [M, KH, KW, C] for weights) with its k-bit codes as bit planes along the last axis; its
quantization has zero point 0 (the real value is scale x code).

  PackBits(x)          int8 NCHW -> packed NHWC: code = x - z_x (the pass proves it fits);
                       float32 NCHW -> binary NHWC: +1 where x >= 0, else -1 (NaN: -1),
                       BipolarQuant's sign
  UnpackBits(x)        packed NHWC -> int8 NCHW: y = code + z_y; or float32 NCHW: y = scale *
                       code (a Dequantize)
  QConvBits(x, w, b?)  2-D convolution of packed x with packed constant weights w, int32 bias
                       in s_x s_w[m] units; y = clamp(requant(acc + b) + z_y, lo, hi) as int8
                       NCHW, or as packed NHWC codes (z_y = 0); binary y: the sign of
                       acc + b (+1 for 0; b a threshold, no requantization)
  QConvPack(x, w, b?)  QConv (int8 NCHW input, int8 weights, any group) whose output is
                       written as packed NHWC codes: clamp(requant(acc + b), lo, hi), zero
                       point 0 (the first layer of a low-bit network: no int8 copy of its
                       output in the arena)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .. import Graph, Node
from ..lowbit import Bits
from ..registry import ir_op
from ..types import DType, QuantParams, TensorType
from .conv import ConvAttrs, check_conv
from .int8_ops import INT32_MAX, check_accumulator


@dataclass(frozen=True)
class BitsConvAttrs:
    kernel: Tuple[int, int]
    strides: Tuple[int, int]
    pads: Tuple[int, int, int, int]   # top, left, bottom, right
    dilations: Tuple[int, int]
    lo: int                           # the clamp, in y's integer domain (int8 or its codes)
    hi: int


@dataclass(frozen=True)
class PackConvAttrs(ConvAttrs):
    """A QConvPack's geometry (ConvAttrs, no activation) and clamp in its output codes."""
    lo: int = 0
    hi: int = 0


def code(t: TensorType) -> Bits:
    """The integer code of a packed tensor type."""
    if t.dtype == DType.BINARY:
        return Bits(1, binary=True)
    return Bits(t.planes, signed=t.dtype.is_signed)


def packed_type(code_: Bits, shape, scale, axis=None) -> TensorType:
    """The packed TensorType holding ``code_`` (scale per tensor, or per channel on ``axis``)."""
    if code_.binary:
        dtype = DType.BINARY
    else:
        dtype = {(False, 2): DType.UINT2, (True, 2): DType.INT2, (False, 4): DType.UINT4,
                 (True, 4): DType.INT4}[(code_.signed, 2 if code_.bits <= 2 else 4)]
    scale = tuple(float(s) for s in np.atleast_1d(scale))
    return TensorType(dtype, tuple(shape), QuantParams(scale, (0,) * len(scale), axis,
                                                       code_.bits))


def _packed(t: TensorType) -> bool:
    return t.dtype.packed and t.quant is not None and all(z == 0 for z in t.quant.zero_point)


def _int8(t: TensorType) -> bool:
    return t.dtype == DType.INT8 and t.quant is not None and len(t.quant.zero_point) == 1


def _float_binary(t: TensorType, packed: TensorType) -> bool:
    return t.dtype == DType.FLOAT32 and packed.dtype == DType.BINARY and \
        len(packed.quant.scale) == 1


def check_pack(graph: Graph, node: Node) -> Optional[str]:
    x, y = graph.types[node.inputs[0]], graph.types[node.outputs[0]]
    if not ((_int8(x) or _float_binary(x, y)) and _packed(y) and x.rank == 4 and
            y.shape == (x.shape[0], x.shape[2], x.shape[3], x.shape[1])):
        return f"packs int8 (or float into binary) NCHW into packed NHWC, got {x} -> {y}"
    return None


def check_unpack(graph: Graph, node: Node) -> Optional[str]:
    x, y = graph.types[node.inputs[0]], graph.types[node.outputs[0]]
    if not (_packed(x) and (_int8(y) or (y.dtype == DType.FLOAT32 and len(x.quant.scale) == 1))
            and y.rank == 4 and
            x.shape == (y.shape[0], y.shape[2], y.shape[3], y.shape[1])):
        return f"unpacks packed NHWC into int8 or float NCHW, got {x} -> {y}"
    return None


def check_conv_bits(graph: Graph, node: Node) -> Optional[str]:
    x, w, y = (graph.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if not (_packed(x) and _packed(w) and node.inputs[1] in graph.constants):
        return "needs packed input and packed constant weights"
    if x.dtype == DType.BINARY and w.dtype != DType.BINARY:
        return "binary input needs binary weights"
    if not (_int8(y) or _packed(y)) or x.rank != 4 or w.rank != 4 or w.shape[3] != x.shape[3]:
        return f"shapes or types do not match: {x}, {w} -> {y}"
    most, wmost = (max(abs(v) for v in code(t).levels) for t in (x, w))
    bias = graph.constants.get(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    worst = most * wmost * int(np.prod(w.shape[1:])) + (
        int(np.abs(bias.astype(np.int64)).max()) if bias is not None and bias.size else 0)
    if worst > INT32_MAX:
        return f"the int32 accumulator can overflow ({worst} > {INT32_MAX})"
    return None


def check_conv_pack(graph: Graph, node: Node) -> Optional[str]:
    x, w, y = (graph.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if not (_int8(x) and w.dtype == DType.INT8 and _packed(y) and y.rank == 4):
        return f"needs int8 input and weights and a packed NHWC output, got {x}, {w} -> {y}"
    n, oh, ow, m = y.shape
    nchw = Node(node.op, node.inputs, ("\0nchw",), node.attrs, node.name)
    types = dict(graph.types)
    types["\0nchw"] = TensorType(DType.INT8, (n, m, oh, ow), x.quant)
    view = Graph(graph.name, [], [], [], types, graph.constants)
    return check_conv(view, nchw) or check_accumulator(view, nchw)


def _macs(graph: Graph, node: Node) -> int:
    w = graph.types[node.inputs[1]].shape
    return graph.types[node.outputs[0]].numel * int(np.prod(w[1:]))


ir_op("PackBits", check=check_pack)
ir_op("UnpackBits", check=check_unpack)
ir_op("QConvBits", macs=_macs, check=check_conv_bits)
ir_op("QConvPack", macs=_macs, check=check_conv_pack)
