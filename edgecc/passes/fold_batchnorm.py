"""Fold an inference BatchNormalization into the Conv, ConvTranspose or Gemm before it.

Before:  t = Conv(x, W, b);  y = BatchNormalization(t, gamma, beta, mean, var)
After:   y = Conv(x, W', b')

Preconditions: the producer's weights (and bias, if any) are constants, its output feeds only
the BatchNormalization and is not a graph output, and BN normalizes the producer's output
channels (axis 1; for Gemm the N axis of the (M, N) output).

Math: BN(t) = a[c] * t + s[c] with a = gamma / sqrt(var + eps), s = beta - mean * a, so
  Conv:           W'[c, ...] = a[c] * W[c, ...],              b' = a * b + s
  ConvTranspose:  W has shape (C_in, M/group, k...); output channel c = g * (M/group) + j,
                  W'[g*Cg + i, j, ...] = a[c] * W[g*Cg + i, j, ...], b' = a * b + s
  Gemm:           Y = alpha * A op(B) + beta * C:  op(B)'[:, c] = a[c] * op(B)[:, c],
                  C' = a * beta * C + s  (beta' = 1)
Computed in float64, stored in the weights' dtype.

Quantized weights (a QONNX/Brevitas export: W = DequantizeLinear(Wq, s_w), BatchNormalization
not folded before export), Conv only: the integers stay and the scale takes a, per channel:
  W' = DequantizeLinear(Wq', s_w'),  s_w'[c] = |a[c]| s_w[c],  Wq'[c] = sign(a[c]) Wq[c]
  (so s_w'[c] Wq'[c] = a[c] s_w[c] Wq[c] exactly in real numbers), b' = a b + s as above.
Preconditions besides the above: Wq a signed integer constant, the DequantizeLinear's output
used only by this Conv, zero point 0, no a[c] = 0, and no -128 (int8's minimum: its negation
would not fit) in a channel that changes sign. The integer path (fold_qdq) then takes the
Conv with per-channel weight scales.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..ir import Graph, Node
from ..ir.ops.batchnorm import batchnorm_affine
from .rewrite import Rule, View, rewrite


def _fold(g: Graph, bn: Node, view: View) -> bool:
    prod = view.producers.get(bn.inputs[0])
    if (prod is None or prod.op not in ("Conv", "ConvTranspose", "Gemm")
            or getattr(prod.attrs, "activation", None) is not None
            or g.use_count(prod.outputs[0]) != 1 or prod.outputs[0] in g.outputs
            or not all(g.is_constant(i) for i in bn.inputs[1:5])):
        return False
    a, s = batchnorm_affine(*(g.constants[i] for i in bn.inputs[1:5]), bn.attrs.epsilon)
    if all(g.is_constant(i) for i in prod.inputs[1:] if i):
        if prod.op == "Gemm" and len(g.types[prod.outputs[0]].shape) != 2:
            return False
        new_prod = _fold_into(g, prod, a, s)
    else:  # weights DequantizeLinear(constant): a quantized Conv
        dq = view.producers.get(prod.inputs[1])
        if (prod.op != "Conv" or dq is None or dq.op != "DequantizeLinear"
                or not all(g.is_constant(i) for i in prod.inputs[2:] if i)):
            return False
        new_prod = _fold_into_quantized(g, prod, dq, a, s)
    if new_prod is None:
        return False
    new_prod = new_prod.replace(outputs=(bn.outputs[0],))
    g.nodes = [new_prod if n is prod else n for n in g.nodes if n is not bn]
    return True


RULES = [Rule("batchnorm-into-producer", ("BatchNormalization",), _fold)]


def fold_batchnorm(graph: Graph) -> Graph:
    g = rewrite(graph, RULES)
    g.remove_unused()
    return g


def _fold_into(g: Graph, prod, a, s):
    w_name = prod.inputs[1]
    w = g.constants[w_name].astype(np.float64)
    dtype = g.constants[w_name].dtype
    bias_name = prod.inputs[2] if len(prod.inputs) > 2 else ""
    attrs = prod.attrs
    if prod.op == "Conv":
        if w.shape[0] != a.size:
            return None
        w2 = w * a.reshape((-1,) + (1,) * (w.ndim - 1))
        b = g.constants[bias_name].astype(np.float64) if bias_name else np.zeros(a.size)
        b2 = a * b + s
    elif prod.op == "ConvTranspose":
        group = attrs.group
        cg, mg = w.shape[0] // group, w.shape[1]
        if mg * group != a.size:
            return None
        scale = a.reshape(group, 1, mg)  # [g, 1, j] broadcast over the group's input channels
        w2 = (w.reshape((group, cg, mg) + w.shape[2:])
              * scale.reshape((group, 1, mg) + (1,) * (w.ndim - 2))).reshape(w.shape)
        b = g.constants[bias_name].astype(np.float64) if bias_name else np.zeros(a.size)
        b2 = a * b + s
    else:  # Gemm
        n = g.types[prod.outputs[0]].shape[1]
        if a.size != n:
            return None
        w2 = w * (a.reshape(-1, 1) if attrs.trans_b else a.reshape(1, -1)) * attrs.alpha
        if bias_name:
            c = np.broadcast_to(g.constants[bias_name].astype(np.float64) * attrs.beta,
                                np.broadcast_shapes(g.constants[bias_name].shape, (n,)))
            b2 = a * c + s
        else:
            b2 = s
        attrs = dataclasses.replace(attrs, alpha=1.0, beta=1.0)
    w_new = g.add_constant(g.fresh_name(w_name + "_bnfold"), w2.astype(dtype))
    b_new = g.add_constant(g.fresh_name((bias_name or prod.outputs[0]) + "_bnfold_bias"),
                           np.asarray(b2).astype(dtype))
    return prod.replace(inputs=(prod.inputs[0], w_new, b_new), attrs=attrs)


def _fold_into_quantized(g: Graph, conv, dq, a, s):
    """The Conv with weights DequantizeLinear(Wq', s_w') and bias a b + s (module docstring),
    or None where a precondition fails."""
    wq_name = dq.inputs[0]
    q = dq.attrs.quant
    if (not g.is_constant(wq_name) or g.use_count(dq.outputs[0]) != 1 or any(q.zero_point)
            or q.axis not in (None, 0)):
        return None
    wq = g.constants[wq_name]
    m = wq.shape[0]
    if (wq.dtype.kind != "i" or a.size != m or np.any(a == 0)
            or np.any(wq[a < 0] == np.iinfo(wq.dtype).min)):
        return None
    scale = np.broadcast_to(np.asarray(q.scale, np.float64), (m,))
    flip = np.where(a < 0, -1, 1).reshape((-1,) + (1,) * (wq.ndim - 1))
    wq2 = (wq.astype(np.int64) * flip).astype(wq.dtype)
    q2 = dataclasses.replace(q, scale=tuple(float(v) for v in np.abs(a) * scale),
                             zero_point=(0,) * m, axis=0)
    w_int = g.add_constant(g.fresh_name(wq_name + "_bnfold"), wq2)
    g.types[w_int] = dataclasses.replace(g.types[w_int], quant=q2)
    w_float = g.fresh_name(dq.outputs[0] + "_bnfold")
    g.types[w_float] = g.types[dq.outputs[0]]
    g.nodes.insert(g.nodes.index(dq) + 1, dq.replace(inputs=(w_int,), outputs=(w_float,),
                                                    attrs=dataclasses.replace(dq.attrs, quant=q2)))
    bias_name = conv.inputs[2] if len(conv.inputs) > 2 else ""
    b = g.constants[bias_name].astype(np.float64) if bias_name else np.zeros(m)
    b_new = g.add_constant(g.fresh_name((bias_name or conv.outputs[0]) + "_bnfold_bias"),
                           np.asarray(a * b + s).astype(np.float32))
    return conv.replace(inputs=(conv.inputs[0], w_float, b_new))
