"""Portable C kernels of the patch-based execution ops TileCopy and TilePaste (NCHW windows,
one memcpy per row)."""
from __future__ import annotations

from ..kernels import Kernel, kernel


@kernel("TileCopy")
def tile_copy(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return Kernel("tile_copy.c.j2", dict(x=x, y=y, NC=y.shape[0] * y.shape[1],
                                         H0=node.attrs.begin[0], W0=node.attrs.begin[1]),
                  [x.name, y.name])


@kernel("TilePaste")
def tile_paste(ctx, node):
    acc = ctx.view(node.inputs[0]) if node.inputs[0] else None
    t, y = ctx.view(node.inputs[1]), ctx.view(node.outputs[0])
    return Kernel("tile_paste.c.j2", dict(acc=acc, t=t, y=y, NC=t.shape[0] * t.shape[1],
                                          H0=node.attrs.begin[0], W0=node.attrs.begin[1]),
                  ([acc.name] if acc else []) + [t.name, y.name])
