"""IR ops: Gemm and MatMul (numpy-style batch broadcasting).

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/gemm.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import Activation, Graph, Node
from ..registry import ir_op


@dataclass(frozen=True)
class GemmAttrs:
    """Y = alpha * op(A) @ op(B) + beta * C, op = transpose when trans_a/trans_b."""

    trans_a: bool = False
    trans_b: bool = False
    alpha: float = 1.0
    beta: float = 1.0
    activation: Optional[Activation] = None


@dataclass(frozen=True)
class MatMulAttrs:
    activation: Optional[Activation] = None


def _gemm_macs(graph: Graph, node: Node) -> int:
    a = graph.types[node.inputs[0]].shape
    y = graph.types[node.outputs[0]].shape
    k = a[0] if node.attrs.trans_a else a[1]
    return int(np.prod(y)) * int(k)


def _matmul_macs(graph: Graph, node: Node) -> int:
    a = graph.types[node.inputs[0]].shape
    y = graph.types[node.outputs[0]].shape
    return int(np.prod(y)) * int(a[-1])


def check_gemm(graph: Graph, node: Node) -> Optional[str]:
    """A [M, K] (K x M with trans_a), B [K, N] (N x K with trans_b), C broadcastable to
    [M, N], Y [M, N]."""
    a_t, b_t, y_t = (graph.types[t] for t in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if a_t.rank != 2 or b_t.rank != 2 or y_t.rank != 2:
        return "A, B and Y need 2 dims"
    m, k = a_t.shape[::-1] if node.attrs.trans_a else a_t.shape
    k2, n = b_t.shape[::-1] if node.attrs.trans_b else b_t.shape
    if k != k2 or y_t.shape != (m, n):
        return f"A {list(a_t.shape)} x B {list(b_t.shape)} does not give Y {list(y_t.shape)}"
    if len(node.inputs) > 2 and node.inputs[2]:
        c = graph.types[node.inputs[2]].shape
        if len(c) > 2 or any(d not in (1, want) for d, want in zip(c[::-1], (n, m))):
            return f"C {list(c)} does not broadcast to [{m}, {n}]"
    return None


ir_op("Gemm", macs=_gemm_macs, check=check_gemm)


ir_op("MatMul", macs=_matmul_macs,
      reference=lambda n, xs: [np.matmul(xs[0], xs[1])] if n.attrs.activation is None else None)
