"""ONNX lowerings: tensors made from shapes and values.

- Constants (their value depends only on shapes, attributes and compile-time inputs):
  ConstantOfShape, Range, EyeLike, Size. The loader folds them already unless they produce a
  graph output; EyeLike of a runtime tensor is a constant too (only its shape is read).
- Copies: Expand and Tile (IR ``Expand``/``Tile``, strided copies), DepthToSpace and
  SpaceToDepth (Reshape, Transpose, Reshape), Compress with a constant condition (a Gather
  of the kept indices), CenterCropPad (one Pad whose negative pads crop).
- Their own kernels: Trilu, OneHot, CumSum, CumProd, ReverseSequence, Col2Im.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, numpy_helper

from ...ir import DType
from ...ir.ops.generate import (
    Col2ImAttrs,
    CumAttrs,
    ExpandAttrs,
    OneHotAttrs,
    ReverseSequenceAttrs,
    TileAttrs,
    TriluAttrs,
)
from ...ir.ops.movement import GatherAttrs, PadAttrs, TransposeAttrs
from ..registry import lowering
from .movement import emit_or_fold, norm_axis
from .shape_ops import add_folded, emit_reshape


def _ints(value) -> list:
    return [int(v) for v in np.asarray(value).reshape(-1).tolist()]


def _scalar(ctx, i: int, what: str, default=None):
    value = ctx.const_input(i, what, default)
    if value is None:
        return None
    value = np.asarray(value)
    if value.size != 1:
        raise ctx.error(f"input {i} ({what}) must hold one value, not {value.size}")
    return value.reshape(-1)[0]


# -- constants -------------------------------------------------------------------------------
@lowering("ConstantOfShape", const_inputs=(0,))
def lower_constant_of_shape(ctx, node):
    shape = _ints(ctx.const_input(0, "shape"))
    if min(shape, default=0) < 0 or int(np.prod(shape, dtype=np.float64)) >= 2 ** 31:
        raise ctx.error(f"shape {shape} has a negative dimension or too many elements")
    value = ctx.attr("value", None)
    value = np.zeros(1, np.float32) if value is None else numpy_helper.to_array(value)
    add_folded(ctx, node.output[0], np.full(shape, value.reshape(-1)[0], dtype=value.dtype))


@lowering("Range", const_inputs=(0, 1, 2))
def lower_range(ctx, node):
    start = _scalar(ctx, 0, "start")
    limit = _scalar(ctx, 1, "limit")
    delta = _scalar(ctx, 2, "delta")
    if delta == 0:
        raise ctx.error("Range delta is 0")
    if not np.isfinite([float(start), float(limit), float(delta)]).all():
        raise ctx.error("Range start, limit and delta must be finite")
    if (float(limit) - float(start)) / float(delta) >= 2 ** 31:
        raise ctx.error(f"Range({start}, {limit}, {delta}) has too many elements")
    # onnx's reference: numpy's arange in Python numbers, cast to the type of start
    value = np.arange(start.item(), limit.item(), delta.item()).astype(np.asarray(start).dtype)
    add_folded(ctx, node.output[0], value)


@lowering("EyeLike")
def lower_eye_like(ctx, node):
    """Only the input's shape is read: the output is a constant."""
    x_type = ctx.type(node.input[0])
    if x_type.rank != 2:
        raise ctx.error(f"EyeLike needs a 2-D input, not {x_type}")
    to = ctx.attr("dtype", None)
    try:
        dtype = x_type.dtype if to is None else DType.from_onnx(to)
    except KeyError:
        raise ctx.error(f"EyeLike dtype {TensorProto.DataType.Name(to)} is not "
                        "supported") from None
    rows, cols = x_type.shape
    value = np.eye(rows, cols, int(ctx.attr("k", 0)), dtype=dtype.np_dtype)
    add_folded(ctx, node.output[0], value)


@lowering("Size")
def lower_size(ctx, node):
    add_folded(ctx, node.output[0], np.array(ctx.type(node.input[0]).numel, dtype=np.int64))


# -- copies ----------------------------------------------------------------------------------
@lowering("Expand", const_inputs=(1,))
def lower_expand(ctx, node):
    x_type = ctx.type(node.input[0])
    shape = _ints(ctx.const_input(1, "shape"))
    try:
        out = tuple(int(d) for d in np.broadcast_shapes(x_type.shape, tuple(shape)))
    except ValueError:
        raise ctx.error(f"cannot expand {x_type} to shape {shape}") from None
    if out == x_type.shape:
        ctx.alias_output(node.input[0], node.output[0])
        return
    emit_or_fold(ctx, "Expand", [node.input[0]], node.output[0], ExpandAttrs(out),
                 x_type.with_shape(out))


@lowering("Tile", const_inputs=(1,))
def lower_tile(ctx, node):
    x_type = ctx.type(node.input[0])
    repeats = _ints(ctx.const_input(1, "repeats"))
    if len(repeats) != x_type.rank or min(repeats, default=0) < 0:
        raise ctx.error(f"repeats {repeats} must be {x_type.rank} non-negative counts")
    out_type = x_type.with_shape([d * r for d, r in zip(x_type.shape, repeats)])
    emit_or_fold(ctx, "Tile", [node.input[0]], node.output[0], TileAttrs(tuple(repeats)),
                 out_type)


def _mode(ctx, default: str = "DCR") -> str:
    mode = ctx.attr("mode", default)
    if mode not in ("DCR", "CRD"):
        raise ctx.error(f"mode '{mode}' is not DCR or CRD")
    return mode


def _reshape_transpose_reshape(ctx, node, mid, perm, final):
    x = node.input[0]
    x_type = ctx.type(x)
    a = ctx.temp(f"{node.output[0]}_blocks", x_type.with_shape(mid))
    emit_reshape(ctx, x, a, mid)
    t_shape = [mid[p] for p in perm]
    b = ctx.temp(f"{node.output[0]}_moved", x_type.with_shape(t_shape))
    emit_or_fold(ctx, "Transpose", [a], b, TransposeAttrs(tuple(perm)), x_type.with_shape(t_shape))
    emit_reshape(ctx, b, node.output[0], final)


@lowering("DepthToSpace")
def lower_depth_to_space(ctx, node):
    x_type = ctx.type(node.input[0])
    s = int(ctx.attr("blocksize"))
    if x_type.rank != 4 or s <= 0 or x_type.shape[1] % (s * s):
        raise ctx.error(f"blocksize {s} does not divide the channels of {x_type} (4-D)")
    n, c, h, w = x_type.shape
    if _mode(ctx) == "DCR":
        mid, perm = [n, s, s, c // (s * s), h, w], [0, 3, 4, 1, 5, 2]
    else:
        mid, perm = [n, c // (s * s), s, s, h, w], [0, 1, 4, 2, 5, 3]
    _reshape_transpose_reshape(ctx, node, mid, perm, [n, c // (s * s), h * s, w * s])


@lowering("SpaceToDepth")
def lower_space_to_depth(ctx, node):
    x_type = ctx.type(node.input[0])
    s = int(ctx.attr("blocksize"))
    if x_type.rank != 4 or s <= 0 or x_type.shape[2] % s or x_type.shape[3] % s:
        raise ctx.error(f"blocksize {s} does not divide the height and width of {x_type} (4-D)")
    n, c, h, w = x_type.shape
    perm = [0, 3, 5, 1, 2, 4] if _mode(ctx) == "DCR" else [0, 1, 3, 5, 2, 4]
    _reshape_transpose_reshape(ctx, node, [n, c, h // s, s, w // s, s], perm,
                               [n, c * s * s, h // s, w // s])


@lowering("Compress", const_inputs=(1,))
def lower_compress(ctx, node):
    """The kept indices are known at compile time: a Gather of them along the axis (of the
    flattened input without an axis)."""
    x, out = node.input[0], node.output[0]
    x_type = ctx.type(x)
    cond = np.asarray(ctx.const_input(1, "condition")).reshape(-1).astype(bool)
    axis = ctx.attr("axis", None)
    if axis is None:
        flat = ctx.temp(f"{out}_flat", x_type.with_shape([x_type.numel]))
        emit_reshape(ctx, x, flat, [x_type.numel])
        x, axis, x_type = flat, 0, ctx.type(flat)
    axis = norm_axis(ctx, axis, x_type.rank)
    dim = x_type.shape[axis]
    if cond[dim:].any():
        raise ctx.error(f"condition selects index {int(np.flatnonzero(cond)[-1])} past axis "
                        f"{axis} of size {dim}")
    kept = np.flatnonzero(cond[:dim]).astype(np.int64)
    shape = list(x_type.shape)
    shape[axis] = kept.size
    indices = ctx.add_constant(f"{out}_indices", kept)
    emit_or_fold(ctx, "Gather", [x, indices], out, GatherAttrs(axis), x_type.with_shape(shape))


@lowering("CenterCropPad", const_inputs=(1,))
def lower_center_crop_pad(ctx, node):
    """Crop and pad around the centre (the extra element of an odd difference at the end):
    one Pad with zeros, negative pads cropping."""
    x_type = ctx.type(node.input[0])
    rank = x_type.rank
    shape = _ints(ctx.const_input(1, "shape"))
    axes = ctx.attr("axes", None)
    axes = list(range(rank)) if axes is None else [norm_axis(ctx, a, rank) for a in axes]
    if len(shape) != len(axes) or len(set(axes)) != len(axes) or min(shape, default=0) < 0:
        raise ctx.error(f"shape {shape} must give one size per distinct axis {axes}")
    begin, end = [0] * rank, [0] * rank
    for a, size in zip(axes, shape):
        d = size - x_type.shape[a]
        sign = 1 if d >= 0 else -1
        begin[a] = sign * (abs(d) // 2)
        end[a] = sign * (abs(d) - abs(d) // 2)
    out_shape = [d + b + e for d, b, e in zip(x_type.shape, begin, end)]
    value = 0.0 if x_type.dtype.is_float else 0
    emit_or_fold(ctx, "Pad", [node.input[0]], node.output[0],
                 PadAttrs(tuple(begin + end), "constant", value), x_type.with_shape(out_shape))


# -- own kernels -----------------------------------------------------------------------------
@lowering("Trilu", const_inputs=(1,))
def lower_trilu(ctx, node):
    x_type = ctx.type(node.input[0])
    if x_type.rank < 2:
        raise ctx.error(f"Trilu needs at least 2 axes, not {x_type}")
    k = _scalar(ctx, 1, "k", np.array(0))
    rows, cols = x_type.shape[-2:]
    k = int(min(max(int(k), -rows - 1), cols + 1))  # beyond that every k gives the same
    emit_or_fold(ctx, "Trilu", [node.input[0]], node.output[0],
                 TriluAttrs(bool(ctx.attr("upper", 1)), k), x_type)


@lowering("OneHot", const_inputs=(1,))
def lower_one_hot(ctx, node):
    indices, values = node.input[0], node.input[2]
    i_type, v_type = ctx.type(indices), ctx.type(values)
    if i_type.dtype == DType.BOOL:
        raise ctx.error("OneHot indices must be numbers, not bool")
    depth = float(_scalar(ctx, 1, "depth"))
    if not 1 <= depth < 2 ** 31 or depth != int(depth):
        raise ctx.error(f"depth {depth} must be a positive integer")
    if v_type.numel != 2:
        raise ctx.error(f"values must hold [off, on], not {v_type}")
    axis = norm_axis(ctx, ctx.attr("axis", -1), i_type.rank + 1)
    shape = i_type.shape[:axis] + (int(depth),) + i_type.shape[axis:]
    emit_or_fold(ctx, "OneHot", [indices, values], node.output[0],
                 OneHotAttrs(axis, int(depth)), v_type.with_shape(shape))


@lowering("CumSum", "CumProd", const_inputs=(1,))
def lower_cum(ctx, node):
    x_type = ctx.type(node.input[0])
    if x_type.dtype == DType.BOOL or x_type.rank == 0:
        raise ctx.error(f"{node.op_type} needs a numeric tensor of rank >= 1, not {x_type}")
    axis = norm_axis(ctx, _scalar(ctx, 1, "axis"), x_type.rank)
    attrs = CumAttrs(axis, bool(ctx.attr("exclusive", 0)), bool(ctx.attr("reverse", 0)))
    emit_or_fold(ctx, node.op_type, [node.input[0]], node.output[0], attrs, x_type)


@lowering("ReverseSequence")
def lower_reverse_sequence(ctx, node):
    x_type, l_type = ctx.type(node.input[0]), ctx.type(node.input[1])
    batch_axis, time_axis = int(ctx.attr("batch_axis", 1)), int(ctx.attr("time_axis", 0))
    if x_type.rank < 2 or {batch_axis, time_axis} != {0, 1}:
        raise ctx.error(f"batch_axis {batch_axis} and time_axis {time_axis} must be 0 and 1 "
                        f"of a tensor of rank >= 2 ({x_type})")
    if l_type.dtype not in (DType.INT32, DType.INT64) or l_type.shape != \
            (x_type.shape[batch_axis],):
        raise ctx.error(f"sequence_lens must be int64 [{x_type.shape[batch_axis]}], "
                        f"not {l_type}")
    lens = ctx.const(node.input[1])
    if lens is not None and (lens.min(initial=0) < 0
                             or lens.max(initial=0) > x_type.shape[time_axis]):
        raise ctx.error(f"sequence_lens {lens.tolist()} outside [0, "
                        f"{x_type.shape[time_axis]}]")
    emit_or_fold(ctx, "ReverseSequence", [node.input[0], node.input[1]], node.output[0],
                 ReverseSequenceAttrs(batch_axis, time_axis), x_type)


@lowering("Col2Im", const_inputs=(1, 2))
def lower_col2im(ctx, node):
    x_type = ctx.type(node.input[0])
    image = _ints(ctx.const_input(1, "image_shape"))
    block = _ints(ctx.const_input(2, "block_shape"))
    rank = len(image)
    dil = [int(v) for v in ctx.attr("dilations", [1] * rank)]
    pads = [int(v) for v in ctx.attr("pads", [0] * (2 * rank))]
    strides = [int(v) for v in ctx.attr("strides", [1] * rank)]
    if (len(block) != rank or len(dil) != rank or len(strides) != rank or len(pads) != 2 * rank
            or min(image + block + dil + strides, default=1) <= 0 or min(pads, default=0) < 0):
        raise ctx.error("image_shape, block_shape, dilations, strides and pads must be "
                        "positive (pads non-negative), one per spatial axis")
    kk = int(np.prod(block))
    nblocks = [(image[d] + pads[d] + pads[rank + d] - dil[d] * (block[d] - 1) - 1)
               // strides[d] + 1 for d in range(rank)]
    if (x_type.rank != 3 or x_type.shape[1] % kk or min(nblocks) <= 0
            or x_type.shape[2] != int(np.prod(nblocks))):
        raise ctx.error(f"input {x_type} is not [N, C * {kk}, {int(np.prod(nblocks))}] for "
                        f"image {image} and block {block}")
    attrs = Col2ImAttrs(tuple(image), tuple(block), tuple(dil), tuple(pads), tuple(strides))
    shape = [x_type.shape[0], x_type.shape[1] // kk] + image
    emit_or_fold(ctx, "Col2Im", [node.input[0]], node.output[0], attrs, x_type.with_shape(shape))
