"""Ops that only change how a tensor's bytes are viewed: Reshape, Flatten, Squeeze, Unsqueeze;
and ops whose value is known at compile time: Shape, Constant.

Reshape, Flatten, Squeeze and Unsqueeze all lower to one IR op, ``Reshape``, registered as an
alias: no C code, the memory planner gives the output the input's buffer. An alias needs a
buffer to share, so a Reshape of a constant is folded here instead (the loader folds most of
them already; it keeps the ones that produce a graph output).

Shape and Constant are normally folded into initializers by the loader
(compiler/loader.py). They reach lowering only when they produce a graph output; they are then
folded here into a constant, which the run function copies out of flash.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from onnx import numpy_helper

from ...ir import DType
from ...ir.ops.shape_ops import ReshapeAttrs
from ..registry import lowering


def emit_reshape(ctx, src: str, out: str, shape: Sequence[int]) -> None:
    """``out`` = ``src`` viewed with ``shape``: an alias node, or a constant if ``src`` is one."""
    shape = tuple(int(d) for d in shape)
    x_type = ctx.type(src)
    if int(np.prod(shape)) != x_type.numel:
        raise ctx.error(f"cannot reshape {x_type} to shape {list(shape)}")
    if src in ctx.graph.constants:
        ctx.graph.add_constant(out, ctx.graph.constants[src].reshape(shape))
        return
    ctx.emit("Reshape", [src], [out], ReshapeAttrs(shape), types=[x_type.with_shape(shape)])


def _axes(ctx, node, rank: int, input_pos: int = 1):
    """Axes from the ``axes`` input (opset >= 13) or attribute, normalized to [0, rank)."""
    if len(node.input) > input_pos and node.input[input_pos]:
        axes = ctx.const_input(input_pos, "axes").reshape(-1).tolist()
    else:
        axes = ctx.attr("axes", None)
    if axes is None:
        return None
    out = []
    for a in axes:
        a = int(a)
        if not -rank <= a < rank:
            raise ctx.error(f"axis {a} is out of range for rank {rank}")
        out.append(a + rank if a < 0 else a)
    if len(set(out)) != len(out):
        raise ctx.error(f"repeated axes {list(axes)}")
    return out


@lowering("Reshape", const_inputs=(1,))
def lower_reshape(ctx, node):
    x_shape = ctx.type(node.input[0]).shape
    if ctx.opset < 5:
        target = list(ctx.attr("shape", []))
    else:
        target = [int(d) for d in ctx.const_input(1, "shape").reshape(-1).tolist()]
    allowzero = bool(ctx.attr("allowzero", 0))
    shape = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if i >= len(x_shape):
                raise ctx.error(f"shape {target}: 0 at position {i} has no input dim to copy")
            d = x_shape[i]
        shape.append(d)
    if shape.count(-1) > 1:
        raise ctx.error(f"shape {target} has more than one -1")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1]))
        total = int(np.prod(x_shape))
        if known == 0 or total % known:
            raise ctx.error(f"cannot infer the -1 of shape {target} from input shape "
                            f"{list(x_shape)}")
        shape[shape.index(-1)] = total // known
    if any(d < 0 for d in shape):
        raise ctx.error(f"invalid shape {target}")
    emit_reshape(ctx, node.input[0], node.output[0], shape)


@lowering("Flatten")
def lower_flatten(ctx, node):
    x_shape = ctx.type(node.input[0]).shape
    rank = len(x_shape)
    axis = int(ctx.attr("axis", 1))
    if not -rank <= axis <= rank:
        raise ctx.error(f"axis {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    shape = (int(np.prod(x_shape[:axis])), int(np.prod(x_shape[axis:])))
    emit_reshape(ctx, node.input[0], node.output[0], shape)


@lowering("Squeeze", const_inputs=(1,))
def lower_squeeze(ctx, node):
    x_shape = ctx.type(node.input[0]).shape
    axes = _axes(ctx, node, len(x_shape))
    if axes is None:
        axes = [i for i, d in enumerate(x_shape) if d == 1]
    for a in axes:
        if x_shape[a] != 1:
            raise ctx.error(f"cannot squeeze axis {a} of size {x_shape[a]}")
    shape = [d for i, d in enumerate(x_shape) if i not in axes]
    emit_reshape(ctx, node.input[0], node.output[0], shape)


@lowering("Unsqueeze", const_inputs=(1,))
def lower_unsqueeze(ctx, node):
    x_shape = ctx.type(node.input[0]).shape
    n_axes = (ctx.const_input(1, "axes").size if len(node.input) > 1 and node.input[1]
              else len(ctx.attr("axes", [])))
    axes = _axes(ctx, node, len(x_shape) + n_axes)
    if not axes:
        raise ctx.error("Unsqueeze needs axes")
    rest = iter(x_shape)
    shape = [1 if i in axes else next(rest) for i in range(len(x_shape) + len(axes))]
    emit_reshape(ctx, node.input[0], node.output[0], shape)


def add_folded(ctx, out: str, value: np.ndarray) -> None:
    """Make ``out`` a constant, with a clear error if the C backend cannot store its type."""
    value = np.asarray(value)
    try:
        DType.from_numpy(value.dtype)
    except KeyError:
        raise ctx.error(f"constant of element type {value.dtype} is not supported") from None
    ctx.graph.add_constant(out, value)


@lowering("Shape")
def lower_shape(ctx, node):
    """Folded: every shape is static. Reached only when its output is a graph output."""
    x_shape = ctx.type(node.input[0]).shape
    start = int(ctx.attr("start", 0))
    end = ctx.attr("end", None)
    dims = x_shape[start:] if end is None else x_shape[start:int(end)]
    add_folded(ctx, node.output[0], np.array(dims, dtype=np.int64))


@lowering("Constant")
def lower_constant(ctx, node):
    """Folded: reached only when the constant is a graph output (the loader folds the rest)."""
    if not node.attribute:
        raise ctx.error("Constant without a value attribute")
    attr = node.attribute[0]
    name = attr.name
    if name == "value":
        try:
            value = numpy_helper.to_array(attr.t)
        except Exception as e:
            raise ctx.error(f"cannot read the constant's value: {e}") from None
    elif name == "value_float":
        value = np.array(attr.f, dtype=np.float32)
    elif name == "value_floats":
        value = np.array(list(attr.floats), dtype=np.float32)
    elif name == "value_int":
        value = np.array(attr.i, dtype=np.int64)
    elif name == "value_ints":
        value = np.array(list(attr.ints), dtype=np.int64)
    else:
        raise ctx.error(f"Constant with attribute '{name}' is not supported "
                        "(strings and sparse tensors cannot be stored in C)")
    add_folded(ctx, node.output[0], value)
