"""Portable C kernels for data movement (see compiler/lowering/movement.py).

Transpose, Slice, Concat and constant-mode Pad are all strided copies: a loop nest over the
copied block, reading ``src[offset + sum(i_k * src_stride_k)]`` and writing
``y[offset + sum(i_k * dst_stride_k)]``. Axes that are contiguous on both sides are merged
first (``collapse_loops``), so e.g. a channel Concat of NCHW tensors is one or two loops per
input. Edge/reflect/wrap Pad reads through a per-axis table of source offsets; Gather copies
rows selected by an index tensor (negative indices wrapped at run time).
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ..codegen import c_literal
from ..kernels import Kernel, collapse_loops, kernel


def index_expr(offset: int, strides: Sequence[int]) -> str:
    """``12 + i0 * 40 - i1`` for offset 12 and strides (40, -1)."""
    parts: List[str] = [str(offset)] if offset else []
    for k, s in enumerate(strides):
        if s == 0:
            continue
        term = f"i{k}" if abs(s) == 1 else f"i{k} * {abs(s)}"
        if not parts:
            parts.append(term if s > 0 else f"-{term}")
        else:
            parts.append(("+ " if s > 0 else "- ") + term)
    return " ".join(parts) or "0"


def copy_block(src: str, shape, src_offset: int, src_strides, dst_offset: int, dst_strides,
               comment: str) -> dict:
    """One loop nest of a strided-copy kernel (strides in elements)."""
    dims, (ss, ds) = collapse_loops(shape, src_strides, dst_strides)
    return dict(src=src, dims=dims, src_index=index_expr(src_offset, ss),
                dst_index=index_expr(dst_offset, ds), comment=comment)


def strided_copy(ctx, node, copies, fill=None) -> Kernel:
    """Kernel for ``strided_copy.c.j2``: inputs are named x0, x1, ... in the C function."""
    y = ctx.view(node.outputs[0])
    inputs = [dict(param=f"x{k}", view=ctx.view(name)) for k, name in enumerate(node.inputs)]
    used = {c["src"] for c in copies}
    depth = max([len(c["dims"]) for c in copies] + [1])
    return Kernel("strided_copy.c.j2",
                  dict(inputs=inputs, unused=[x["param"] for x in inputs if x["param"] not in used],
                       y=y, copies=copies, fill=fill, loop_vars=[f"i{k}" for k in range(depth)]),
                  list(node.inputs) + [y.name])


@kernel("Transpose")
def transpose(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    perm = node.attrs.perm
    src_strides = [x.strides[p] for p in perm]
    block = copy_block("x0", y.shape, 0, src_strides, 0, y.strides,
                       f"y[...] = x0 transposed by perm {list(perm)}")
    return strided_copy(ctx, node, [block])


@kernel("Slice")
def slice_(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    offset = sum(s * st for s, st in zip(a.starts, x.strides))
    src_strides = [t * st for t, st in zip(a.steps, x.strides)]
    ranges = ", ".join(f"{s}:{s + n}" if t == 1 else
                       f"{s}:{'' if s + t * n < 0 else s + t * n}:{t}"
                       for s, t, n in zip(a.starts, a.steps, a.sizes))
    block = copy_block("x0", y.shape, offset, src_strides, 0, y.strides, f"y = x0[{ranges}]")
    return strided_copy(ctx, node, [block])


@kernel("Concat")
def concat(ctx, node):
    y = ctx.view(node.outputs[0])
    axis = node.attrs.axis
    copies, start = [], 0
    for k, name in enumerate(node.inputs):
        x = ctx.view(name)
        n = x.shape[axis]
        copies.append(copy_block(f"x{k}", x.shape, 0, x.strides, start * y.strides[axis],
                                 y.strides, f"x{k} -> y[{':, ' * axis}{start}:{start + n}]"))
        start += n
    return strided_copy(ctx, node, copies)


def _split_pads(node, rank):
    pads = node.attrs.pads
    return list(pads[:rank]), list(pads[rank:])


@kernel("Pad")
def pad(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    begin, end = _split_pads(node, x.rank)
    if node.attrs.mode != "constant":
        return pad_map(x, y, begin, end, node.attrs.mode)
    # Fill with the pad value, then copy the (possibly cropped) input into the interior.
    lo = [max(-b, 0) for b in begin]                        # first input index kept
    n = [d - l - max(-e, 0) for d, l, e in zip(x.shape, lo, end)]
    at = [max(b, 0) for b in begin]                         # where it lands in y
    copies = []
    if min(n, default=1) > 0:
        copies.append(copy_block("x0", n, sum(l * s for l, s in zip(lo, x.strides)), x.strides,
                                 sum(a * s for a, s in zip(at, y.strides)), y.strides,
                                 "the input into the interior of y"))
    grows = any(b > 0 or e > 0 for b, e in zip(begin, end))
    fill = c_literal(node.attrs.value, y.dtype) if grows else None
    return strided_copy(ctx, node, copies, fill)


def pad_map(x, y, begin, end, mode) -> Kernel:
    """Edge/reflect/wrap Pad: per padded axis, a table of the source offset of each output
    index (the numpy ``np.pad`` of ``arange``, so the semantics are numpy's exactly).
    Runs of unpadded axes are merged into one loop that reads directly."""
    axes, table = [], []
    for k in range(x.rank):
        stride = x.strides[k]
        if begin[k] == 0 and end[k] == 0:
            if axes and axes[-1]["table"] is None:
                axes[-1]["dim"] *= x.shape[k]
                axes[-1]["stride"] = stride
            else:
                axes.append(dict(dim=x.shape[k], stride=stride, table=None))
            continue
        src = np.arange(x.shape[k])[max(-begin[k], 0):x.shape[k] - max(-end[k], 0)]
        src = np.pad(src, (max(begin[k], 0), max(end[k], 0)), mode=mode)
        axes.append(dict(dim=y.shape[k], stride=stride, table=len(table)))
        table.extend(int(v) * stride for v in src)
    return Kernel("pad_map.c.j2", dict(x=x, y=y, axes=axes, mode=mode),
                  [x.name, y.name], tables={"src": np.array(table, dtype=np.int32)})


@kernel("Gather")
def gather(ctx, node):
    x, idx, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    axis = node.attrs.axis
    outer = int(np.prod(x.shape[:axis])) if axis else 1
    inner = int(np.prod(x.shape[axis + 1:])) if axis + 1 < x.rank else 1
    return Kernel("gather.c.j2", dict(x=x, idx=idx, y=y, axis=axis, outer=outer,
                                      inner=inner, dim=x.shape[axis], n=idx.numel),
                  [x.name, idx.name, y.name])


@kernel("BitCast")
def bitcast(ctx, node):
    """The input's bytes copied unchanged (memcpy: no aliasing of types in C)."""
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return Kernel("bitcast.c.j2", dict(x=x, y=y, nbytes=y.dtype.storage_bytes(y.shape)),
                  [x.name, y.name])
