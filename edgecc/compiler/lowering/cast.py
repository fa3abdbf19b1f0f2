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
in between may differ in the last float16 bits). QuantizeLinear to a narrow float becomes
the scaling (lowering/quantize_linear.py: to float32) and a Cast to that type.

ONNX int4/uint4/int2/uint2 tensors (the IR's INT4... are the low-bit path's bit planes,
ir/lowbit.py) are held one value a byte, as ml_dtypes holds them: ``unpack_sub_byte_types``
types them int8/uint8, a Cast to them is a Cast to int8/uint8 wrapping to their bits
(CastAttrs.bits), and a QuantizeLinear to them says its type in ``output_dtype``:

    Before:  x: float -> Cast(to=INT4) -> y: int4
    After:   x: float -> Cast(to=INT4) -> y: int8      (lowered: Cast[int8, bits=4])
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


# ONNX sub-byte integer types -> (the int8/uint8 type holding one value a byte, bits)
SUB_BYTE_ONNX = {TensorProto.INT4: (TensorProto.INT8, 4), TensorProto.UINT4: (TensorProto.UINT8, 4)}
if hasattr(TensorProto, "INT2"):
    SUB_BYTE_ONNX.update({TensorProto.INT2: (TensorProto.INT8, 2),
                          TensorProto.UINT2: (TensorProto.UINT8, 2)})
# the float8 types, whose QuantizeLinear/DequantizeLinear zero point must be (and is taken as) 0
_FLOAT8 = tuple(getattr(TensorProto, n) for n in (
    "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ"))


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
    if mode not in ("up", "down", "nearest"):
        raise ctx.error(f"round_mode '{mode}' is not supported")
    return mode


@lowering("Cast")
def lower_cast(ctx, node):
    to = ctx.attr("to")
    if to in SUB_BYTE_ONNX:  # held one value a byte (unpack_sub_byte_types): wrap to its bits
        held, bits = SUB_BYTE_ONNX[to]
        ctx.type(node.input[0])
        ctx.emit("Cast", node.input[:1], node.output[:1], CastAttrs(_dtype(held), bits=bits),
                 types=[TensorType(_dtype(held), ctx.type(node.output[0]).shape)])
        return
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


def _elem_types(g) -> dict:
    """Tensor name -> ONNX element type, of the graph's typed tensors and initializers."""
    elem = {vi.name: vi.type.tensor_type.elem_type
            for vi in list(g.input) + list(g.value_info) + list(g.output)
            if vi.type.HasField("tensor_type")}
    elem.update({t.name: t.data_type for t in g.initializer})
    return elem


def _castlike_to_cast(node: onnx.NodeProto, to: int) -> None:
    attrs = [a for a in node.attribute]
    del node.input[1:]
    del node.attribute[:]
    node.op_type = "Cast"
    node.attribute.extend(attrs + [helper.make_attribute("to", to)])


def unpack_sub_byte_types(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its int4/uint4/int2/uint2 tensors held one value a byte (the module
    docstring): graph inputs, outputs and value_info typed int8/uint8, int2/uint2
    initializers as int8/uint8 values (the front end unpacks int4/uint4 ones itself and
    records their bits), CastLike to such a type a Cast, QuantizeLinear to one with
    ``output_dtype`` set to it. Returns ``model`` itself when it has none."""
    elem = _elem_types(model.graph)
    if not any(e in SUB_BYTE_ONNX for e in elem.values()):
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for node in g.node:
        if node.op_type == "CastLike" and elem.get(node.input[1], 0) in SUB_BYTE_ONNX:
            _castlike_to_cast(node, elem[node.input[1]])
        elif node.op_type == "QuantizeLinear" and elem.get(node.output[0], 0) in SUB_BYTE_ONNX:
            keep = [a for a in node.attribute if a.name != "output_dtype"]
            del node.attribute[:]
            node.attribute.extend(keep + [helper.make_attribute("output_dtype",
                                                                elem[node.output[0]])])
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and tt.elem_type in SUB_BYTE_ONNX:
            tt.elem_type = SUB_BYTE_ONNX[tt.elem_type][0]
    for k, init in enumerate(g.initializer):
        if init.data_type in SUB_BYTE_ONNX and SUB_BYTE_ONNX[init.data_type][1] == 2:
            held = helper.tensor_dtype_to_np_dtype(SUB_BYTE_ONNX[init.data_type][0])
            value = numpy_helper.to_array(init).astype(held)
            g.initializer[k].CopyFrom(numpy_helper.from_array(value, init.name))
    return m


def _narrow_quantize(g, elem: dict, taken: set) -> None:
    """QuantizeLinear to a narrow float -> QuantizeLinear to float32 (the scaling, lowered by
    lowering/quantize_linear.py) and a Cast to the type with the node's ``saturate``. A float8
    QuantizeLinear's or DequantizeLinear's zero point that is 0 (as onnx's reference wants)
    is dropped: onnx's reference ignores it, and adding +0 would turn -0 into +0; another
    one is applied, the spec's formula."""
    infos = {vi.name: vi for vi in list(g.value_info) + list(g.output)}
    zeros = {t.name for t in g.initializer if not numpy_helper.to_array(t).astype(np.float32).any()}

    def drop_float8_zero_point(node, quantized: str) -> None:
        if elem.get(quantized, 0) in _FLOAT8 and len(node.input) > 2 and node.input[2] in zeros:
            del node.input[2:]

    nodes = []
    for node in g.node:
        nodes.append(node)
        if node.op_type == "DequantizeLinear":
            drop_float8_zero_point(node, node.input[0])
        y = node.output[0] if node.output else ""
        if node.op_type != "QuantizeLinear" or not _narrow(elem.get(y, 0)) or y not in infos:
            continue
        drop_float8_zero_point(node, y)
        saturate = next((helper.get_attribute_value(a) for a in node.attribute
                         if a.name == "saturate"), 1)
        keep = [a for a in node.attribute if a.name not in ("saturate", "output_dtype")]
        del node.attribute[:]
        node.attribute.extend(keep)
        wide = _fresh(y, taken)
        node.output[0] = wide
        g.value_info.append(_float_info(wide, infos[y]))
        nodes.append(helper.make_node("Cast", [wide], [y], to=elem[y], saturate=saturate,
                                      name=f"{y}_cast"))
    del g.node[:]
    g.node.extend(nodes)


def widen_narrow_types(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its narrow float tensors computed in float32 (the module docstring):
    initializers widened, inner tensors typed float32, a Cast after each narrow graph input
    that a non-Cast node reads and before each narrow graph output not made by a Cast;
    CastLike to a narrow type becomes a Cast (the type of its input 1 is about to change),
    QuantizeLinear to one the scaling and a Cast (``_narrow_quantize``). Its int4/uint4/
    int2/uint2 tensors are held one value a byte first (``unpack_sub_byte_types``).
    Returns ``model`` itself when it has neither."""
    model = unpack_sub_byte_types(model)
    g = model.graph
    elem = _elem_types(g)
    if not any(_narrow(e) for e in elem.values()):
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    taken = set(elem) | {o for n in g.node for o in n.output}
    _narrow_quantize(g, elem, taken)
    for node in g.node:
        if node.op_type == "CastLike" and _narrow(elem.get(node.input[1], 0)):
            _castlike_to_cast(node, elem[node.input[1]])
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
        cast = _cast_node(wide, vi.name, to)
        if producer.op_type == "Cast":  # its value is exact in ``to``: keep its Inf (E5M2)
            cast.attribute.extend(a for a in producer.attribute if a.name == "saturate")
        g.node.append(cast)
        g.value_info.append(_float_info(wide, vi))
    nodes = front + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return m
