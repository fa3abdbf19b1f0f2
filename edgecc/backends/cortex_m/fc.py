"""int8 fully connected layer (QGemm, x [B, K] times w [M, K]^T) for Cortex-M: conv.py's
matrix product with one pixel per batch row and no patches to gather (the pointwise form), so
it is exact under the same conditions (|acc| < 2^30, right shifts 1..22; K a multiple of 4,
which the pointwise gather reads in words); other layers go to the next backend (CMSIS-NN's
fully connected or 1x1 convolution)."""
from __future__ import annotations

from typing import Optional

from . import conv


def plan(graph, node) -> Optional[dict]:
    if node.op != "QGemm" or graph.types[node.inputs[0]].rank != 2:
        return None
    found = conv.matrix_facts(conv.int8_layer(graph, node, 0))
    return found if found is not None and found["K"] % 4 == 0 else None


scratch = conv.scratch


def emit(ctx, node):
    found = plan(ctx.graph, node)
    if found is None:
        return None
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    (b, k), m = x.shape, y.shape[1]
    return conv.kernel(ctx, node, found, x, y, True, dict(
        P=b, H=1, W=1, C=k, OH=1, OW=1, M=m, KH=1, KW=1, SH=1, SW=1, DH=1, DW=1, PT=0, PL=0))
