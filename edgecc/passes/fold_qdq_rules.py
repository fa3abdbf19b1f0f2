"""Per-op rules of passes/fold_qdq.py: how each float op becomes an integer op.

A rule gets (graph, float node, its inputs as QIn, the int8 output tensor) and returns the
replacement nodes, or None when the op must stay float. Integer IR ops are registered in
compiler/lowering/int8_ops.py; their kernels are in backends/generic/int8*.py.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..ir import Node, QuantParams, TensorType
from ..ir.ops import IR_OPS
from ..ir.ops.gemm import GemmAttrs
from .fold_qdq_base import (
    CLAMP_ACTIVATIONS,
    LutAttrs,
    QIn,
    fold_rule,
    is_int8,
    per_tensor,
    quantize_bias,
    quantize_weight_const,
    requant_node,
)


def _runtime_int8(g, qin) -> bool:
    return qin is not None and not qin.const and per_tensor(qin.quant) and is_int8(g, qin.name)


@fold_rule("Conv")
def fold_conv(g, node, ins, q_out):
    act = node.attrs.activation
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    if (act and act.kind) not in CLAMP_ACTIVATIONS or not _runtime_int8(g, x) or not w.const:
        return None
    if not per_tensor(g.types[q_out].quant):
        return None
    wq = quantize_weight_const(g, w, 0, w.name)
    if wq is None or any(g.types[wq[0]].quant.zero_point):
        return None
    w_name, s_w = wq
    inputs = [x.name, w_name]
    if b is not None and not np.all(np.asarray(s_w) > 0):
        return None  # a zero weight scale: the bias cannot be put on the accumulator's scale
    if b is not None and b.const:
        inputs.append(quantize_bias(b, g, g.types[x.name].quant.scale[0], s_w, node.name or q_out))
    elif b is not None:
        return None
    return [Node("QConv", tuple(inputs), (q_out,), node.attrs, node.name, node.origin)]


@fold_rule("Gemm")
def fold_gemm(g, node, ins, q_out):
    a = node.attrs
    if a.trans_a or a.alpha != 1.0 or a.beta not in (0.0, 1.0):
        return None
    return _fold_fc(g, node, ins, q_out, a.trans_b, ins[2] if len(ins) > 2 and a.beta else None)


@fold_rule("MatMul")
def fold_matmul(g, node, ins, q_out):
    if (len(g.types[node.inputs[0]].shape) != 2 or ins[1] is None or not ins[1].const
            or len(g.types[ins[1].name].shape) != 2):
        return None
    return _fold_fc(g, node, ins, q_out, False, None)


def _fold_fc(g, node, ins, q_out, trans_b, bias):
    """Fully connected: y[m, n] = sum_k x[m, k] * W[n, k] + b[n], W stored (N, K)."""

    act = node.attrs.activation
    x, w = ins[0], ins[1]
    if ((act and act.kind) not in CLAMP_ACTIVATIONS or not _runtime_int8(g, x) or not w.const
            or not per_tensor(g.types[q_out].quant)):
        return None
    value = g.constants[w.name]
    if not trans_b:  # re-lay out (K, N) as (N, K); per-channel axis 1 becomes axis 0
        quant = w.quant
        if quant is not None and quant.axis is not None:
            quant = QuantParams(quant.scale, quant.zero_point, 0, quant.bits)
        name = g.add_constant(g.fresh_name(f"{w.name}_nk"), np.ascontiguousarray(value.T))
        if quant is not None:
            g.types[name] = TensorType(g.types[name].dtype, g.types[name].shape, quant)
        w = QIn(name, quant, True)
    wq = quantize_weight_const(g, w, 0, w.name)
    if wq is None or any(g.types[wq[0]].quant.zero_point):
        return None
    w_name, s_w = wq
    inputs = [x.name, w_name]
    if bias is not None:
        if not bias.const or not np.all(np.asarray(s_w) > 0):  # see fold_conv
            return None
        inputs.append(quantize_bias(bias, g, g.types[x.name].quant.scale[0], s_w,
                                    node.name or q_out))
    attrs = GemmAttrs(trans_b=True, activation=act)
    return [Node("QGemm", tuple(inputs), (q_out,), attrs, node.name, node.origin)]


LUT_OPS = tuple(op for op, info in IR_OPS.items() if info.pointwise)  # as 256-entry tables


@fold_rule(*LUT_OPS)
def fold_lut(g, node, ins, q_out):
    x = ins[0]
    if not _runtime_int8(g, x) or not per_tensor(g.types[q_out].quant):
        return None
    a = node.attrs
    attrs = LutAttrs(node.op, a.alpha, a.beta, getattr(a, "approximate", "none"))
    return [Node("QLut", (x.name,), (q_out,), attrs, node.name, node.origin)]


# Ops that move or select int8 values without arithmetic: they run on the int8 tensor as is
# (input and output share one scale and zero point; a QLut requantizes when they differ).
PASS_THROUGH = tuple(op for op, info in IR_OPS.items() if info.quant)


@fold_rule(*PASS_THROUGH)
def fold_pass_through(g, node, ins, q_out):
    data = [i for i in ins if i is not None and not i.const]
    if node.op == "Resize" and node.attrs.mode != "nearest":
        return None
    if node.op == "Pad" and node.attrs.mode != "constant":
        return None
    if node.op == "MaxPool" and len([o for o in node.outputs if o]) != 1:
        return None
    if not data or not all(_runtime_int8(g, i) for i in data):
        return None
    if any(i is not None and i.const and i.quant is not None for i in ins):
        return None  # a DQ'd constant operand (e.g. Concat with a constant): keep float
    out_q = g.types[q_out].quant
    if not per_tensor(out_q) or g.types[data[0].name].dtype != g.types[q_out].dtype:
        return None
    nodes, inputs = [], []
    for orig, qin in zip(node.inputs, ins):
        if qin is None or qin.const:
            inputs.append(orig)
            continue
        src = qin.name
        if g.types[src].quant != out_q:
            if node.op != "Concat":
                break
            rq = requant_node(g, src, out_q, node)
            nodes.append(rq)
            src = rq.outputs[0]
        inputs.append(src)
    else:
        attrs = node.attrs
        if node.op == "Pad":
            zp = out_q.zero_point[0]
            value = int(np.clip(np.rint(attrs.value / out_q.scale[0]) + zp, -128, 255))
            attrs = dataclasses.replace(attrs, value=value)
        return nodes + [Node(node.op, tuple(inputs), (q_out,), attrs, node.name, node.origin)]
    # single-input op with different in/out params: run it at the input's params, then requantize
    src = data[0].name
    mid = g.fresh_name(f"{q_out}_pre")
    g.types[mid] = TensorType(g.types[q_out].dtype, g.types[q_out].shape, g.types[src].quant)
    attrs = node.attrs
    if node.op == "Pad":
        in_q = g.types[src].quant
        value = int(np.clip(np.rint(attrs.value / in_q.scale[0]) + in_q.zero_point[0], -128, 255))
        attrs = dataclasses.replace(attrs, value=value)
    inputs = [src if i == node.inputs[0] else i for i in node.inputs]
    first = Node(node.op, tuple(inputs), (mid,), attrs, node.name, node.origin)
    return [first, requant_node(g, mid, out_q, node, dst=q_out)]
