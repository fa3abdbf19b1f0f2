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


ir_op("Gemm", macs=_gemm_macs)


ir_op("MatMul", macs=_matmul_macs,
      reference=lambda n, xs: [np.matmul(xs[0], xs[1])] if n.attrs.activation is None else None)
