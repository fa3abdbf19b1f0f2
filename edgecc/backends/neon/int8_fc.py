"""int8 fully connected layers (QGemm: x [B, K] times w [N, K]^T, B rows) on NEON: the
one-group convolution kernel of int8_conv.py (neon_qconv.c.j2, its math, exactness argument,
requantization and preconditions) over B "pixels" of a 1 x 1 image with K channels, as a 1x1
convolution with N outputs: rows read in place when K % 16 == 0, else copied into zero-padded
patches. Batch-1 layers read each weight once: SDOT by element (16 outputs x 4 k per
instruction group) or SMULL + SMLAL2 + SADALP (16 k of 4 outputs).

Preconditions: int8_conv.int8_layer's (int8 input, output and constant weights with zero point
0, constant bias or none, per-tensor input and output quantization), rank-2 input and output,
K <= int8_conv.MAX_K, the requantization ranges of int8_conv.requant_records.
"""
from __future__ import annotations

from ..kernels import kernel
from .int8_conv import MAX_K, int8_layer, qconv_kernel, requant_records


@kernel("QGemm")
def qgemm(ctx, node):
    g = ctx.graph
    x_t, y_t = g.types[node.inputs[0]], g.types[node.outputs[0]]
    w_t = g.types[node.inputs[1]]
    if x_t.rank != 2 or y_t.rank != 2 or w_t.rank != 2 or len(node.inputs) < 2:
        return None
    (b, k), n = x_t.shape, y_t.shape[1]
    if w_t.shape != (n, k) or k > MAX_K:
        return None
    found = int8_layer(g, node)
    if found is None:
        return None
    types, weights, bias = found
    rq = requant_records(*types, bias - int(x_t.quant.zero_point[0]) * weights.sum(axis=1))
    if rq is None:
        return None
    geometry = dict(N=b, OH=1, OW=1, H=1, W=1, C=k, KH=1, KW=1, SH=1, SW=1, DH=1, DW=1,
                    PT=0, PL=0)
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return qconv_kernel((types, weights, rq), geometry, node.attrs.activation,
                        [x.name, y.name])
