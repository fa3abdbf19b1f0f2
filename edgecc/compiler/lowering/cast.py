"""ONNX lowerings: Cast and CastLike, including float16, bfloat16 and the 8/4-bit float types;
and the front-end step that computes narrow floats in float32.

Narrow floats (float16, bfloat16, float8, float4: ``DType.is_narrow_float``) are storage
types: only Cast converts to and from them (backends/generic/cast.py). ``widen_narrow_types``
rewrites the ONNX graph before lowering so that every other op sees float32:

    Before:  x: float16 -> Max(x, w: float16 initializer) -> y: float16
    After:   x: float16 -> Cast(to=FLOAT) -> Max(x', w: float32) -> Cast(to=FLOAT16) -> y

Exact: float32 holds every narrow float value, and a Cast to a narrow type inside the graph
rounds to it and widens back (``lower_cast``). Float ops of a float16 model then round once,
at the float16 outputs, instead of after every op (what onnxruntime's float16 kernels do
in between may differ in the last float16 bits).
"""
from __future__ import annotations

import onnx
from onnx import TensorProto, helper, numpy_helper

import numpy as np

from ...ir import DType, TensorType
from ...ir.ops.cast import CastAttrs
from ..registry import lowering


def _dtype(elem: int):
    try:
        return DType.from_onnx(elem)
    except KeyError:
        return None


def _narrow(elem: int) -> bool:
    d = _dtype(elem)
    return d is not None and d.is_narrow_float


def emit_cast(ctx, x: str, y: str, dtype: DType, saturate=True, round_mode="up") -> None:
    """y = Cast(x) to ``dtype``. When y is held in float32 (a narrow float inside the graph,
    widen_narrow_types), the value is rounded to ``dtype`` and widened back."""
    shape = ctx.type(x).shape
    attrs = CastAttrs(dtype, bool(saturate), round_mode)
    y_type = ctx.type(y)
    if y_type.dtype == dtype:
        ctx.emit("Cast", [x], [y], attrs, types=[TensorType(dtype, shape)])
        return
    narrow = ctx.temp(f"{y}_{dtype.name.lower()}", TensorType(dtype, shape))
    ctx.emit("Cast", [x], [narrow], attrs)
    ctx.emit("Cast", [narrow], [y], CastAttrs(y_type.dtype), types=[y_type])


def _round_mode(ctx) -> str:
    mode = ctx.attr("round_mode", "up")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("up", "down", "nearest"):
        raise ctx.error(f"round_mode '{mode}' is not supported")
    return mode


@lowering("Cast")
def lower_cast(ctx, node):
    to = ctx.attr("to")
    dtype = _dtype(to)
    if dtype is None:
        raise ctx.error(f"Cast to {TensorProto.DataType.Name(to)} is not supported")
    ctx.type(node.input[0])  # the source type must be supported too
    emit_cast(ctx, node.input[0], node.output[0], dtype, ctx.attr("saturate", 1),
              _round_mode(ctx))


@lowering("CastLike")
def lower_castlike(ctx, node):
    """CastLike(x, like) -> Cast to like's element type (like's values are not read)."""
    emit_cast(ctx, node.input[0], node.output[0], ctx.type(node.input[1]).dtype,
              ctx.attr("saturate", 1), _round_mode(ctx))


def _fresh(base: str, taken) -> str:
    name, k = f"{base}_float32", 1
    while name in taken:
        name, k = f"{base}_float32_{k}", k + 1
    taken.add(name)
    return name


def _float_info(name: str, vi) -> onnx.ValueInfoProto:
    dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def _cast_node(x: str, y: str, to: int) -> onnx.NodeProto:
    return helper.make_node("Cast", [x], [y], to=to, name=f"{y}_cast")


def widen_narrow_types(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its narrow float tensors computed in float32 (the module docstring):
    initializers widened, inner tensors typed float32, a Cast after each narrow graph input
    that a non-Cast node reads and before each narrow graph output not made by a Cast;
    CastLike to a narrow type becomes a Cast (the type of its input 1 is about to change).
    Returns ``model`` itself when it has no narrow float tensor."""
    g = model.graph
    elem = {vi.name: vi.type.tensor_type.elem_type
            for vi in list(g.input) + list(g.value_info) + list(g.output)
            if vi.type.HasField("tensor_type")}
    elem.update({t.name: t.data_type for t in g.initializer})
    if not any(_narrow(e) for e in elem.values()):
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    taken = set(elem) | {o for n in g.node for o in n.output}
    for node in g.node:
        if node.op_type == "CastLike" and _narrow(elem.get(node.input[1], 0)):
            attrs = [a for a in node.attribute]
            to = elem[node.input[1]]
            del node.input[1:]
            del node.attribute[:]
            node.op_type = "Cast"
            node.attribute.extend(attrs + [helper.make_attribute("to", to)])
    for k, init in enumerate(g.initializer):
        if _narrow(init.data_type):
            value = numpy_helper.to_array(init).astype(np.float32)
            g.initializer[k].CopyFrom(numpy_helper.from_array(value, init.name))
    for vi in g.value_info:
        if _narrow(vi.type.tensor_type.elem_type):
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    initializers = {t.name for t in g.initializer}
    front = []
    for vi in g.input:
        if vi.name in initializers or not _narrow(vi.type.tensor_type.elem_type):
            continue
        readers = [n for n in g.node if n.op_type != "Cast" and vi.name in n.input]
        if not readers:
            continue
        wide = _fresh(vi.name, taken)
        for n in readers:
            n.input[:] = [wide if i == vi.name else i for i in n.input]
        front.append(_cast_node(vi.name, wide, TensorProto.FLOAT))
        g.value_info.append(_float_info(wide, vi))
    inputs = {vi.name for vi in g.input}
    for vi in g.output:
        to = vi.type.tensor_type.elem_type
        producer = next((n for n in g.node if vi.name in n.output), None)
        readers = [n for n in g.node if vi.name in n.input]
        if (not _narrow(to) or producer is None or vi.name in inputs
                or (producer.op_type == "Cast" and not readers)):
            continue
        wide = _fresh(vi.name, taken)
        for n in [producer] + readers:
            n.input[:] = [wide if i == vi.name else i for i in n.input]
            n.output[:] = [wide if o == vi.name else o for o in n.output]
        g.node.append(_cast_node(wide, vi.name, to))
        g.value_info.append(_float_info(wide, vi))
    nodes = front + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return m
