"""What the fold rules of passes/fold_qdq.py share: the inputs they see (QIn), the table op
(LutAttrs), the ``fold_rule`` marker and the int8 helpers (bias and weight quantization,
requantization nodes)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ir import DType, Graph, Node, QuantParams, TensorType
from ..ir.quant import quantize


@dataclass(frozen=True)
class QIn:
    """One input of the op being folded."""

    name: str                     # the integer tensor behind the DQ (or the float constant)
    quant: Optional[QuantParams]  # None for a float constant
    const: bool


@dataclass(frozen=True)
class LutAttrs:
    """An int8 -> int8 pointwise function as a 256-entry table, built from the float op
    ``kind`` (an ONNX op name, or "Requantize") and the input and output quantization."""

    kind: str
    alpha: float = 0.0
    beta: float = 0.0
    approximate: str = "none"


CLAMP_ACTIVATIONS = (None, "Relu", "Clip")  # fused activations the integer ops can clamp


def fold_rule(*ops: str):
    """Marks a function as a fold rule for the float ops ``ops``; passes/fold_qdq.py lists
    the rules in the order they are tried."""
    def mark(fn):
        fn.fold_ops = tuple(ops)
        return fn
    return mark


def per_tensor(q: Optional[QuantParams]) -> bool:
    return q is not None and q.axis is None and len(q.scale) == 1


def is_int8(g: Graph, name: str) -> bool:
    return g.types[name].dtype in (DType.INT8, DType.UINT8)


def requant_node(g: Graph, src: str, quant: QuantParams, origin_node: Node, dst: str = "") -> Node:
    """A QLut that maps ``src`` to a tensor with ``quant`` (same dtype family)."""
    t = g.types[src]
    dst = dst or g.fresh_name(f"{src}_requant")
    g.types[dst] = TensorType(t.dtype, t.shape, quant)
    return Node("QLut", (src,), (dst,), LutAttrs("Requantize"), name=origin_node.name,
                origin=origin_node.origin)


def quantize_bias(bias: QIn, g: Graph, s_in: float, s_w: np.ndarray, name_hint: str) -> str:
    """int32 bias with scale s_in * s_w[c]: reuse an int32 DQ bias whose scale already is
    that, else requantize the real bias values."""
    want = (s_in * s_w).astype(np.float64)
    value = g.constants[bias.name]
    if bias.quant is not None:
        real = (value.astype(np.float64) - np.asarray(bias.quant.zero_point)) * np.asarray(
            bias.quant.scale)
        if (value.dtype == np.int32 and not any(bias.quant.zero_point)
                and np.allclose(np.broadcast_to(bias.quant.scale, want.shape), want, rtol=1e-6)):
            q = value.astype(np.int32)
        else:
            q = np.clip(np.rint(real / want), -2**31, 2**31 - 1).astype(np.int32)
    else:
        q = np.clip(np.rint(value.astype(np.float64) / want), -2**31, 2**31 - 1).astype(np.int32)
    q = np.broadcast_to(q, want.shape).copy()
    name = g.add_constant(g.fresh_name(f"{name_hint}_bias_q"), q)
    g.types[name] = TensorType(DType.INT32, q.shape, QuantParams(
        tuple(float(s) for s in want), (0,) * want.size, 0 if want.size > 1 else None, 32))
    return name


def quantize_weight_const(g: Graph, w: QIn, axis: int, name_hint: str):
    """A constant weight as int8 with per-channel params along ``axis``: a DQ'd int8 constant
    is used as is (params broadcast to per-channel); a float constant is quantized
    symmetrically per channel, max|W[c]| / 127 (QUANT.md)."""
    value = g.constants[w.name]
    channels = value.shape[axis]
    if w.quant is not None:
        if value.dtype != np.int8:
            return None
        q = w.quant
        if q.axis is None:
            q = QuantParams(q.scale * channels, q.zero_point * channels, axis, 8)
        elif q.axis != axis:
            return None
        g.types[w.name] = TensorType(DType.INT8, value.shape, q)
        return w.name, np.asarray(q.scale, dtype=np.float64)
    moved = np.moveaxis(value.astype(np.float64), axis, 0).reshape(channels, -1)
    scales = np.maximum(np.abs(moved).max(axis=1), 1e-12) / 127.0
    scales = scales.astype(np.float32).astype(np.float64)
    shape = [1] * value.ndim
    shape[axis] = channels
    wq = quantize(value, scales.reshape(shape).astype(np.float32), 0, np.int8)
    wq = np.clip(wq, -127, 127).astype(np.int8)
    name = g.add_constant(g.fresh_name(f"{name_hint}_q"), wq)
    g.types[name] = TensorType(DType.INT8, wq.shape, QuantParams(
        tuple(float(s) for s in scales), (0,) * channels, axis, 8))
    return name, scales


def replace_attrs(attrs, **changes):
    return dataclasses.replace(attrs, **changes)
