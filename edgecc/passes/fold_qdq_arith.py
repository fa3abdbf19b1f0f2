"""Fold rules (passes/fold_qdq.py) for the int8 arithmetic ops of int8_arith_ops.py.

  DQ(a), DQ(b) -> Add/Mul -> Q            QAdd/QMul (also with a DQ'd or float constant)
  DQ(a), DQ(b) -> Add/Mul -> Relu|Clip -> Q   QAdd/QMul with the clamp fused
  DQ(x) -> AveragePool (incl. Global) -> Q    QAveragePool
  DQ(x) -> ReduceMean -> Q                    QReduceMean
  DQ(x) -> Softmax -> Q                       QSoftmax
  DQ(a), DQ(b) -> MatMul -> Q                 QMatMul, when the QGemm rule (constant 2-D
                                              weight) does not apply
Every operand and the output must be per-tensor int8/uint8. The int32 accumulators of
QMatMul and the pools are bounded by 255^2 * K and 255 * count: rules refuse (the op stays
float) when those could overflow. A float constant operand of Add/Mul is quantized
asymmetrically per tensor over its own range.
"""
from __future__ import annotations

import numpy as np

from ..ir import Activation, DType, Node, QuantParams, TensorType
from ..ir.ops.int8_arith_ops import QBinaryAttrs
from ..ir.quant import choose_qparams, quantize
from .fold_qdq_base import CLAMP_ACTIVATIONS, QIn, fold_rule, is_int8, per_tensor

INT32_MAX = 2**31 - 1


def _operand(g, qin, hint: str):
    """The int8 tensor for one operand, its type carrying its per-tensor params; or None."""
    if qin is None:
        return None
    if qin.quant is None:
        if not qin.const or g.constants[qin.name].dtype != np.float32:
            return None
        value = g.constants[qin.name]
        scale, zp = choose_qparams(value.min(initial=0.0), value.max(initial=0.0), np.int8)
        q = QuantParams((scale,), (zp,), None, 8)
        name = g.add_constant(g.fresh_name(f"{hint}_q"), quantize(value, scale, zp, np.int8))
        g.types[name] = TensorType(DType.INT8, value.shape, q)
        return name
    if not per_tensor(qin.quant) or not is_int8(g, qin.name):
        return None
    t = g.types[qin.name]
    if t.quant == qin.quant:
        return qin.name
    if t.quant is None:  # e.g. an int8 graph input or constant: its DQ gives its meaning
        g.types[qin.name] = TensorType(t.dtype, t.shape, qin.quant)
        return qin.name
    if qin.const:  # the constant carries other params elsewhere: a copy with these
        name = g.add_constant(g.fresh_name(f"{hint}_q"), g.constants[qin.name])
        g.types[name] = TensorType(t.dtype, t.shape, qin.quant)
        return name
    return None  # a runtime tensor whose own params differ from its DQ's


def _int8_out(g, q_out) -> bool:
    return per_tensor(g.types[q_out].quant) and is_int8(g, q_out)


def _binary(g, node, ins, q_out, activation, out_node):
    if len(ins) != 2 or not _int8_out(g, q_out):
        return None
    if not any(i is not None and not i.const for i in ins):
        return None
    names = [_operand(g, i, f"{node.name or q_out}_in{k}") for k, i in enumerate(ins)]
    if None in names:
        return None
    op = "QAdd" if node.op == "Add" else "QMul"
    return [Node(op, tuple(names), (q_out,), QBinaryAttrs(activation), out_node.name,
                 out_node.origin)]


@fold_rule("Add", "Mul")
def fold_add_mul(g, node, ins, q_out):
    return _binary(g, node, ins, q_out, None, node)


def _input_qins(g, node):
    """The QIn list fold_qdq would give ``node`` (for a producer folded with its user)."""
    producers = g.producers()
    out = []
    for i in node.inputs:
        p = producers.get(i) if i else None
        if not i:
            out.append(None)
        elif p is not None and p.op == "DequantizeLinear":
            out.append(QIn(p.inputs[0], p.attrs.quant, g.is_constant(p.inputs[0])))
        else:
            out.append(QIn(i, None, g.is_constant(i)))
    return out


@fold_rule("Relu", "Clip")
def fold_clamp(g, node, ins, q_out):
    """Add/Mul -> Relu|Clip -> Q: one QAdd/QMul clamping its output (else None: the QLut rule
    comes next)."""
    prod = g.producers().get(node.inputs[0])
    if (prod is not None and prod.op in ("Add", "Mul") and prod.outputs[0] not in g.outputs
            and g.use_count(prod.outputs[0]) == 1):
        act = Activation(node.op, node.attrs.alpha, node.attrs.beta)
        fused = _binary(g, prod, _input_qins(g, prod), q_out, act, node)
        if fused is not None:
            return fused
    return None


def _runtime(g, qin, hint):
    if qin is None or qin.const:
        return None
    return _operand(g, qin, hint)


@fold_rule("AveragePool")
def fold_average_pool(g, node, ins, q_out):
    x = _runtime(g, ins[0], q_out)
    if x is None or not _int8_out(g, q_out) or 255 * int(np.prod(node.attrs.kernel)) > INT32_MAX:
        return None
    return [Node("QAveragePool", (x,), (q_out,), node.attrs, node.name, node.origin)]


@fold_rule("ReduceMean")
def fold_reduce_mean(g, node, ins, q_out):
    x = _runtime(g, ins[0], q_out)
    if x is None or not _int8_out(g, q_out):
        return None
    shape = g.types[x].shape
    count = int(np.prod([shape[a] for a in node.attrs.axes]))
    if count == 0 or 255 * count > INT32_MAX:
        return None
    return [Node("QReduceMean", (x,), (q_out,), node.attrs, node.name, node.origin)]


@fold_rule("Softmax")
def fold_softmax(g, node, ins, q_out):
    x = _runtime(g, ins[0], q_out)
    if x is None or not _int8_out(g, q_out) or g.types[x].numel == 0:
        return None
    if g.types[q_out].quant.scale[0] < 2.0 ** -30:  # see quant_ref.softmax_output_multiplier
        return None
    return [Node("QSoftmax", (x,), (q_out,), node.attrs, node.name, node.origin)]


@fold_rule("MatMul")
def fold_qmatmul(g, node, ins, q_out):
    """Both operands at run time (the QGemm rule, tried first, takes constant weights)."""
    act = node.attrs.activation
    if (act and act.kind) not in CLAMP_ACTIVATIONS or not _int8_out(g, q_out):
        return None
    if not any(i is not None and not i.const for i in ins[:2]):
        return None
    if any(i is None or i.quant is None for i in ins[:2]):
        return None  # float constant operands: the QGemm rule's business
    names = [_operand(g, i, f"{node.name or q_out}_in{k}") for k, i in enumerate(ins[:2])]
    if None in names:
        return None
    k = g.types[names[0]].shape[-1]
    if 255 * 255 * k > INT32_MAX:
        return None
    return [Node("QMatMul", tuple(names), (q_out,), node.attrs, node.name, node.origin)]
