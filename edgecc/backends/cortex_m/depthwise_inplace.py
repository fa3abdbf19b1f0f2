"""In-place variant of the Cortex-M depthwise kernel (depthwise.py; MCUNet's in-place
depthwise, on NHWC rows instead of NCHW planes): when the memory plan puts the output over the
input (the input dies at the node, MemoryPlan.inplace_nodes), the kernel computes each output
row into a ring of ``ROWS`` rows in the scratch and copies a row to its place in the shared
buffer as soon as no output row still to compute reads the input bytes it covers.

Schedule (batch 1, int8 in and out, OH OW <= H W). With R = OW C bytes per output row and
B = W C per input row, output row f goes to bytes [f R, (f + 1) R), which covers input rows up
to L(f) = ((f + 1) R - 1) // B. Output row q reads input rows q SH - PT + ky DH >= q SH - PT,
so input row i is read by no output row after ready(i) = min(OH - 1, (i + PT) // SH). With
D = max_f(ready(L(f)) - f), the kernel copies row oy - D to its place right after computing row
oy (and the last D rows at the end). Exact: ready(L(f)) <= f + D, so once row f + D is
computed, no row still to compute reads an input row that row f's bytes overwrite; rows not
yet copied live in the scratch only. Before row oy + 1 is computed, rows oy - D + 1 .. oy are
pending, so a ring of D + 1 rows (the scratch, ``ROWS`` R bytes) holds them and row oy + 1
takes the slot row oy - D left: two rows for a 3x3 stride-1 layer, one for stride 2.
"""
from __future__ import annotations

from typing import Optional

from . import depthwise


def ring_rows(h: int, w: int, oh: int, ow: int, c: int, pad_top: int, stride: int) -> int:
    """Rows of the scratch ring (D + 1 in the module docstring)."""
    row_out, row_in = ow * c, w * c
    delay = 0
    for f in range(oh):
        last_in = ((f + 1) * row_out - 1) // row_in
        delay = max(delay, min(oh - 1, (last_in + pad_top) // stride) - f)
    return delay + 1


def _geometry(graph, node):
    x, y = graph.types[node.inputs[0]].shape, graph.types[node.outputs[0]].shape
    if x[0] != 1 or y[0] != 1 or y[1] * y[2] > x[1] * x[2]:
        return None
    return x, y


def inplace_scratch(graph, node) -> Optional[int]:
    """Scratch bytes of the in-place variant (the ring of output rows) when depthwise.py's
    kernel takes the node and its shapes allow it, else None (the node runs out of place)."""
    if depthwise.plan(graph, node) is None:
        return None
    found = _geometry(graph, node)
    if found is None:
        return None
    (_, h, w, c), (_, oh, ow, _) = found
    a = node.attrs
    return ring_rows(h, w, oh, ow, c, a.pads[0], a.strides[0]) * ow * c


def context(ctx, node) -> dict:
    """The template's in-place fields (``inplace`` False when the plan runs it out of place)."""
    if not ctx.inplace(node):
        return dict(inplace=False)
    (_, h, w, c), (_, oh, ow, _) = _geometry(ctx.graph, node)
    a = node.attrs
    return dict(inplace=True, ROWS=ring_rows(h, w, oh, ow, c, a.pads[0], a.strides[0]),
                scratch=ctx.scratch(node))
