"""IR ops (attribute records and facts): tensors made from shapes and values: Expand, Tile,
Trilu, OneHot, CumSum, CumProd, ReverseSequence, Col2Im.

ConstantOfShape, Range, EyeLike and Size become constants in the front end, DepthToSpace and
SpaceToDepth Reshape/Transpose/Reshape, Compress a Gather, CenterCropPad a Pad
(compiler/lowering/generate.py). Each reference below is exactly what its C kernel computes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class ExpandAttrs:
    shape: Tuple[int, ...]  # the output shape (input broadcast to it)


@dataclass(frozen=True)
class TileAttrs:
    repeats: Tuple[int, ...]  # one per axis


@dataclass(frozen=True)
class TriluAttrs:
    """Keeps element (i, j) of each matrix of the last two axes where j - i >= k (upper) or
    j - i <= k (lower); the others become 0."""

    upper: bool
    k: int


@dataclass(frozen=True)
class OneHotAttrs:
    """y has the indices' shape with ``depth`` inserted at ``axis``; inputs: indices and
    values ([off, on])."""

    axis: int  # in [0, rank of y)
    depth: int


@dataclass(frozen=True)
class CumAttrs:
    axis: int  # in [0, rank)
    exclusive: bool = False
    reverse: bool = False


@dataclass(frozen=True)
class ReverseSequenceAttrs:
    """Reverses the first lens[b] steps along ``time_axis`` of each batch entry b."""

    batch_axis: int  # 0 or 1
    time_axis: int   # 1 or 0


@dataclass(frozen=True)
class Col2ImAttrs:
    """Input [N, C * prod(block), L] -> output [N, C, *image]: each column of a block is
    added into the image at its (padded, strided, dilated) position."""

    image: Tuple[int, ...]
    block: Tuple[int, ...]
    dilations: Tuple[int, ...]
    pads: Tuple[int, ...]  # begin_0, ..., begin_n-1, end_0, ..., end_n-1
    strides: Tuple[int, ...]


def tile_reference(x: np.ndarray, a: TileAttrs) -> np.ndarray:
    return np.tile(x, a.repeats)


def trilu_reference(x: np.ndarray, a: TriluAttrs) -> np.ndarray:
    return np.triu(x, a.k) if a.upper else np.tril(x, a.k)


def one_hot_reference(indices: np.ndarray, values: np.ndarray, a: OneHotAttrs) -> np.ndarray:
    """Negative indices count from the end (index + depth); others outside [0, depth) and
    non-integral float indices match no position (all off)."""
    idx = np.asarray(indices)
    if idx.dtype.kind in "iu":
        idx = idx.astype(np.float64) if idx.dtype.kind == "u" else idx.astype(np.int64)
    idx = np.where(idx < 0, idx + a.depth, idx)
    shape = idx.shape[:a.axis] + (1,) + idx.shape[a.axis:]
    target = np.arange(a.depth).reshape((1,) * a.axis + (a.depth,)
                                        + (1,) * (idx.ndim - a.axis))
    hit = np.reshape(idx, shape) == target
    off, on = np.asarray(values).reshape(-1)[:2]
    return np.where(hit, on, off).astype(values.dtype)


def cum_reference(x: np.ndarray, a: CumAttrs, product: bool) -> np.ndarray:
    """Sequential running sum/product in the tensor's own type (integers wrap)."""
    v = np.flip(x, a.axis) if a.reverse else x
    with np.errstate(over="ignore"):
        acc = (np.cumprod if product else np.cumsum)(v, axis=a.axis, dtype=x.dtype)
    if a.exclusive:
        ident = np.full_like(np.take(acc, [0], axis=a.axis), 1 if product else 0)
        acc = np.concatenate([ident, np.take(acc, range(x.shape[a.axis] - 1), axis=a.axis)],
                             axis=a.axis)
    return np.flip(acc, a.axis) if a.reverse else acc


def reverse_sequence_reference(x: np.ndarray, lens: np.ndarray,
                               a: ReverseSequenceAttrs) -> np.ndarray:
    """Lengths outside [0, T] (an invalid model) are clamped, as the kernel does."""
    y = x.copy()
    steps = x.shape[a.time_axis]
    for b, n in enumerate(np.asarray(lens).reshape(-1)):
        n = int(min(max(int(n), 0), steps))
        src = [slice(None)] * x.ndim
        dst = [slice(None)] * x.ndim
        src[a.batch_axis] = dst[a.batch_axis] = b
        src[a.time_axis] = list(range(n - 1, -1, -1))
        dst[a.time_axis] = list(range(n))
        y[tuple(dst)] = x[tuple(src)]
    return y


def col2im_table(a: Col2ImAttrs, cols: int) -> np.ndarray:
    """For each row r = k * L + l of one channel's [K, L] columns: the flat image offset it is
    added to, or -1 where it falls into the padding."""
    rank = len(a.image)
    nblocks = [(a.image[d] + a.pads[d] + a.pads[rank + d] - a.dilations[d] * (a.block[d] - 1)
                - 1) // a.strides[d] + 1 for d in range(rank)]
    table = []
    for k in np.ndindex(*a.block):
        for blk in np.ndindex(*nblocks):
            pos = [blk[d] * a.strides[d] - a.pads[d] + k[d] * a.dilations[d] for d in range(rank)]
            inside = all(0 <= p < n for p, n in zip(pos, a.image))
            table.append(int(np.ravel_multi_index(pos, a.image)) if inside else -1)
    assert len(table) == cols * int(np.prod(a.block))
    return np.array(table, dtype=np.int32)


def col2im_reference(x: np.ndarray, a: Col2ImAttrs) -> np.ndarray:
    n, ck, cols = x.shape
    kk = int(np.prod(a.block))
    table = col2im_table(a, cols)
    img = int(np.prod(a.image))
    y = np.zeros((n * (ck // kk), img), x.dtype)
    rows = x.reshape(n * (ck // kk), kk * cols)
    for r, off in enumerate(table):
        if off >= 0:
            y[:, off] += rows[:, r]
    return y.reshape((n, ck // kk) + tuple(a.image))


ir_op("Expand", reference=lambda n, xs: [np.broadcast_to(xs[0], n.attrs.shape).copy()],
      quant="shared")

ir_op("Tile", reference=lambda n, xs: [tile_reference(xs[0], n.attrs)], quant="shared")

ir_op("Trilu", reference=lambda n, xs: [trilu_reference(xs[0], n.attrs)])

ir_op("OneHot", reference=lambda n, xs: [one_hot_reference(xs[0], xs[1], n.attrs)])

ir_op("CumSum", reference=lambda n, xs: [cum_reference(xs[0], n.attrs, False)])

ir_op("CumProd", reference=lambda n, xs: [cum_reference(xs[0], n.attrs, True)])

ir_op("ReverseSequence",
      reference=lambda n, xs: [reverse_sequence_reference(xs[0], xs[1], n.attrs)])

ir_op("Col2Im", reference=lambda n, xs: [col2im_reference(xs[0], n.attrs)])
