"""float32 fully connected layers on NEON: Gemm with A [R, K] (not transposed), constant B
([K, N], or [N, K] with trans_b), alpha = 1, and no C, beta = 0, or beta = 1 with a constant C
of one value or one row of N; and MatMul of a rank-2 A by a constant rank-2 B. Computed by the
one-group convolution kernel of float_conv.py (neon_conv.c.j2: its register blocking, FMLA by
element, epilogue and accuracy) as a 1x1 convolution over R "pixels" of K channels, the weights
transposed to [N, K] at compile time.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ..kernels import gemm_bias, kernel
from .float_conv import MAX_K, dense_kernel, epilogue


@kernel("Gemm", "MatMul")
def fully_connected(ctx, node):
    g = ctx.graph
    a_t, b_t, y_t = (g.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if (any(t.dtype != DType.FLOAT32 or t.rank != 2 for t in (a_t, b_t, y_t))
            or node.inputs[1] not in g.constants):
        return None
    trans_b = False
    if node.op == "Gemm":
        if node.attrs.trans_a or node.attrs.alpha != 1.0:
            return None
        trans_b = node.attrs.trans_b
    r, k = a_t.shape
    n = y_t.shape[1]
    bias = gemm_bias(g, node, n)
    if bias is None or k > MAX_K:
        return None
    b = g.constants[node.inputs[1]].astype(np.float32)
    weights = b if trans_b else b.T  # [N, K]
    geometry = dict(N=r, OH=1, OW=1, H=1, W=1, C=k, KH=1, KW=1, SH=1, SW=1, DH=1, DW=1,
                    PT=0, PL=0)
    a, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return dense_kernel(np.ascontiguousarray(weights), bias, geometry, epilogue(node),
                        [a.name, y.name])
