"""Portable C kernels of the patch-based execution ops TileCopy and TilePaste and their NHWC
twins (windows of H x W; one memcpy per row of the window)."""
from __future__ import annotations

from ..kernels import Kernel, kernel


def _window(full, tile, begin, nhwc: bool) -> dict:
    """Loop bounds of a window ``tile`` (shape) at ``begin`` (row, column) of ``full`` (shape):
    OUTER blocks of ROWS rows of ROW contiguous elements; the full tensor's block and row
    strides and the window's first element."""
    if nhwc:  # [N, H, W, C]: a row of the window is W_t * C contiguous elements
        c = full[3]
        return dict(OUTER=tile[0], ROWS=tile[1], ROW=tile[2] * c, FULL_BLOCK=full[1] * full[2] * c,
                    FULL_ROW=full[2] * c, OFFSET=(begin[0] * full[2] + begin[1]) * c)
    return dict(OUTER=tile[0] * tile[1], ROWS=tile[2], ROW=tile[3], FULL_BLOCK=full[2] * full[3],
                FULL_ROW=full[3], OFFSET=begin[0] * full[3] + begin[1])


@kernel("TileCopy", "TileCopyNHWC")
def tile_copy(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return Kernel("tile_copy.c.j2", dict(x=x, y=y, **_window(
        x.shape, y.shape, node.attrs.begin, node.op.endswith("NHWC"))), [x.name, y.name])


@kernel("TilePaste", "TilePasteNHWC")
def tile_paste(ctx, node):
    acc = ctx.view(node.inputs[0]) if node.inputs[0] else None
    t, y = ctx.view(node.inputs[1]), ctx.view(node.outputs[0])
    return Kernel("tile_paste.c.j2", dict(acc=acc, t=t, y=y, **_window(
        y.shape, t.shape, node.attrs.begin, node.op.endswith("NHWC"))),
        ([acc.name] if acc else []) + [t.name, y.name])
