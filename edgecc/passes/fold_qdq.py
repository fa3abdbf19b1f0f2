"""Fold DequantizeLinear -> float op -> QuantizeLinear into one integer op.

Before:  xf = DQ(x_q); wf = DQ(w_q); bf = DQ(b_q); yf = Conv(xf, wf, bf); y_q = Q(yf)
After:   y_q = QConv(x_q, w_q, b_q)           (scales and zero points live in the tensor types)

Preconditions: every runtime input of the op comes from a DequantizeLinear; its weights are
constants behind a DequantizeLinear (or float constants the rule quantizes); its output feeds
only QuantizeLinear nodes with the same parameters and is not a graph output; the op has a rule
in FOLD_RULES whose own conditions hold (e.g. a Conv's fused activation is Relu or Clip).
Anything else stays float between explicit Q/DQ nodes (``edgecc analyze`` shows which).

Math (QUANT.md): the integer op computes the same affine map with int32 accumulation and
fixed-point requantization; onnxruntime does the requantization in float, hence <= 1 LSB
differences per layer. Afterwards Q(DQ(x)) with equal parameters collapses to x, and with
different parameters becomes a QLut requantization (a 256-entry table).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np

from ..ir import DType, Graph, Node, QuantParams, TensorType
from ..ir.quant import quantize
from .cleanup import eliminate_dead_code, rename_tensor


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


FOLD_RULES: Dict[str, Callable] = {}


def fold_rule(*ops: str):
    def register(fn):
        for op in ops:
            FOLD_RULES[op] = fn
        return fn
    return register


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


def fold_qdq(graph: Graph, keep_float: Iterable[str] = ()) -> Graph:
    """keep_float: names of nodes that stay float (``--quantize-exclude``)."""
    from . import fold_qdq_rules  # noqa: F401  registers the per-op rules

    keep_float = set(keep_float)

    g = graph.copy()
    if not any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in g.nodes):
        return g
    changed = True
    while changed:
        changed = False
        producers, consumers = g.producers(), g.consumers()
        for node in g.nodes:
            rule = FOLD_RULES.get(node.op)
            if rule is None or node.name in keep_float or len([o for o in node.outputs if o]) != 1:
                continue
            out = node.outputs[0]
            users = consumers.get(out, [])
            if (out in g.outputs or not users or any(u.op != "QuantizeLinear" for u in users)
                    or any(u.attrs.quant != users[0].attrs.quant for u in users)):
                continue
            ins: List[Optional[QIn]] = []
            for i in node.inputs:
                p = producers.get(i) if i else None
                if not i:
                    ins.append(None)
                elif p is not None and p.op == "DequantizeLinear":
                    ins.append(QIn(p.inputs[0], p.attrs.quant, g.is_constant(p.inputs[0])))
                elif g.is_constant(i):
                    ins.append(QIn(i, None, True))
                else:
                    ins.append(QIn(i, None, False))  # a float runtime tensor: rules refuse
            q_out = users[0].outputs[0]
            new_nodes = rule(g, node, ins, q_out)
            if new_nodes is None:
                continue
            for extra in users[1:]:
                g.nodes.remove(extra)
                rename_tensor(g, extra.outputs[0], q_out)
            g.nodes.remove(users[0])
            at = g.nodes.index(node)
            g.nodes[at:at + 1] = new_nodes
            changed = True
            break
    g = _collapse_requantize(g)
    return eliminate_dead_code(g)  # the DQ/Q nodes folded away


def _collapse_requantize(g: Graph) -> Graph:
    """Q(DQ(x)): the same parameters -> x; other parameters -> QLut requantization."""
    g = g.copy()
    producers = g.producers()
    for q in [n for n in g.nodes if n.op == "QuantizeLinear"]:
        dq = producers.get(q.inputs[0])
        if dq is None or dq.op != "DequantizeLinear":
            continue
        src = dq.inputs[0]
        if g.is_constant(src) or g.types[src].dtype != g.types[q.outputs[0]].dtype:
            continue
        if dq.attrs.quant == q.attrs.quant and q.outputs[0] not in g.outputs:
            g.nodes.remove(q)
            g.nodes = [n.replace(inputs=tuple(src if i == q.outputs[0] else i for i in n.inputs))
                       for n in g.nodes]
        elif per_tensor(dq.attrs.quant) and per_tensor(q.attrs.quant) and is_int8(g, src):
            at = g.nodes.index(q)
            g.nodes[at] = requant_node(g, src, q.attrs.quant, q, dst=q.outputs[0])
    return g


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
