"""float32 fully connected layers on AVX2 + FMA (Gemm, MatMul), generated per layer (issue 13).

Takes a Gemm with float32 A [R, K] (not transposed), constant B ([K, N], or [N, K] with
trans_b), alpha = 1, and either no C, beta = 0, or beta = 1 with a constant C of one row
([N], [1, N] or a single value); and a MatMul of a float32 [R, K] matrix by a constant
[K, N] one. Batch-1 layers are the case it is built for (R = 1: a matrix-vector product);
more rows run one after the other. Anything else returns None (the portable kernel runs it).

    y[r, n] = act(c[n] + sum_k a[r, k] b[k, n])

The N outputs are cut into blocks of 8 (one __m256; the last one zero-padded in the weights
and stored with a mask), grouped in chunks of up to 8 blocks (64 outputs: eight independent
accumulators hide the FMA latency); the weights are packed at compile time chunk by chunk as
[chunk][K][blocks of the chunk x 8], so a chunk streams through memory once, in order. Per k
one input value is broadcast and multiplied with the chunk's weight vectors. The bias starts
the accumulators; the activation is applied as in float_conv.py (Relu and Clip in registers,
any other after the layer with the portable expression).
"""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ..kernels import Kernel, gemm_bias, kernel
from .float_conv import COMMON, _tail_mask, epilogue

CHUNK = 8  # blocks of 8 outputs per chunk


@kernel("Gemm", "MatMul")
def fully_connected(ctx, node):
    graph = ctx.graph
    a_t, b_t, y_t = (graph.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if (any(t.dtype != DType.FLOAT32 or t.rank != 2 for t in (a_t, b_t, y_t))
            or node.inputs[1] not in graph.constants):
        return None
    trans_b = False
    if node.op == "Gemm":
        if node.attrs.trans_a or node.attrs.alpha != 1.0:
            return None
        trans_b = node.attrs.trans_b
    r, k = a_t.shape
    n = y_t.shape[1]
    bias = gemm_bias(graph, node, n)
    if bias is None:
        return None
    b = graph.constants[node.inputs[1]].astype(np.float32)
    b = b.T if trans_b else b  # [K, N]
    blocks = -(-n // 8)
    padded = np.zeros((k, blocks * 8), np.float32)
    padded[:, :n] = b
    full, tail = divmod(blocks, CHUNK)
    spans = [(q * CHUNK, CHUNK) for q in range(full)] + ([(full * CHUNK, tail)] if tail else [])
    w = np.concatenate([padded[:, s * 8:(s + c) * 8].reshape(-1) for s, c in spans])
    bpad = np.zeros(blocks * 8, np.float32)
    bpad[:n] = bias
    return Kernel("x86_gemm.c.j2", dict(
        R=r, K=k, N=n, NB=CHUNK, FULL=full, TAIL=tail, last=n - (blocks - 1) * 8,
        mask=_tail_mask(n - (blocks - 1) * 8), **epilogue(node)),
        [node.inputs[0], node.outputs[0]], tables=dict(w=w, b=bpad), needs=COMMON)
