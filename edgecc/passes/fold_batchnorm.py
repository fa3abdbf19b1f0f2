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
            or not all(g.is_constant(i) for i in bn.inputs[1:5])
            or not all(g.is_constant(i) for i in prod.inputs[1:] if i)):
        return False
    if prod.op == "Gemm" and len(g.types[prod.outputs[0]].shape) != 2:
        return False
    a, s = batchnorm_affine(*(g.constants[i] for i in bn.inputs[1:5]), bn.attrs.epsilon)
    new_prod = _fold_into(g, prod, a, s)
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
