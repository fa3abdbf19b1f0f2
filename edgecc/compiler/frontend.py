"""Lower a static ONNX model into the edgecc IR through the op registry."""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import EdgeccError, UnsupportedError
from ..ir import DType, Graph, Node, Origin, TensorType
from . import (
    lowering,  # noqa: F401  (registers every lowering)
    registry,
)
from .loader import CONTRIB_DOMAIN, DEFAULT_DOMAINS, load_static_model, model_opset, static_shapes
from .lowering.cast import widen_narrow_types
from .lowering.quantize_linear import dequantize_constant


class LowerCtx:
    """What a lowering function sees: the ONNX node's context and the IR graph being built."""

    def __init__(self, graph: Graph, shapes: Dict[str, tuple], label: str, opset: int):
        self.graph = graph
        self.shapes = shapes
        self.label = label
        self.opset = opset
        self.node: Optional[onnx.NodeProto] = None
        self.user_opset = opset
        # constants read from sub-byte initializers (int4, uint4), held unpacked as int8/uint8:
        # name -> bits (DequantizeLinear records them in the QuantParams)
        self.sub_byte: Dict[str, int] = {}

    # -- reading the ONNX node ----------------------------------------------------------
    @property
    def origin(self) -> Origin:
        n = self.node
        return Origin(self.label, n.name or (n.output[0] if n.output else "?"), n.op_type,
                      self.user_opset)

    def error(self, message: str) -> EdgeccError:
        return UnsupportedError(f"{self.origin.describe()}: {message}")

    def attr(self, name: str, default=None):
        """The node's attribute ``name`` (string attributes as str, lists of them as lists of
        str), or ``default``."""
        for a in self.node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                if isinstance(value, bytes):
                    return value.decode()
                if isinstance(value, list) and value and isinstance(value[0], bytes):
                    return [v.decode() for v in value]
                return value
        return default

    def inputs(self) -> list:
        return list(self.node.input)

    def input(self, i: int) -> str:
        return self.node.input[i] if i < len(self.node.input) else ""

    def const(self, name: str) -> Optional[np.ndarray]:
        return self.graph.constants.get(name) if name else None

    def const_input(self, i: int, what: str, default=None):
        """The value of input ``i``, which must be a compile-time constant."""
        name = self.input(i)
        if not name:
            return default
        value = self.const(name) if name in self.graph.constants else self.materialize(name)
        if value is None:
            raise self.error(f"input {i} ({what}) must be a compile-time constant "
                             "(an initializer or computable from shapes)")
        return value

    def materialize(self, name: str) -> Optional[np.ndarray]:
        """A tensor made by DequantizeLinear of a constant (a quantized BatchNorm scale, say)
        becomes a float constant when an op needs its value at compile time."""
        producer = next((n for n in self.graph.nodes if name in n.outputs), None)
        if (producer is None or producer.op != "DequantizeLinear"
                or producer.inputs[0] not in self.graph.constants):
            return None
        value = dequantize_constant(producer.attrs.quant, self.graph.constants[producer.inputs[0]])
        self.graph.nodes.remove(producer)
        del self.graph.types[name]
        self.graph.add_constant(name, value.astype(np.float32))
        return self.graph.constants[name]

    def type(self, name: str) -> TensorType:
        if name in self.graph.types:
            return self.graph.types[name]
        return self.onnx_type(name)

    def onnx_type(self, name: str) -> TensorType:
        if name not in self.shapes:
            raise self.error(f"tensor '{name}' has no static shape after shape inference "
                             "(bind dynamic dims with --input-shape)")
        elem, shape = self.shapes[name]
        try:
            dtype = DType.from_onnx(elem)
        except KeyError as e:
            raise self.error(f"tensor '{name}' has unsupported type {e.args[0]}") from None
        return TensorType(dtype, shape)

    # -- building the IR -----------------------------------------------------------------
    def emit(self, op: str, inputs: Sequence[str], outputs: Sequence[str], attrs=None,
             types: Optional[Sequence[TensorType]] = None) -> Node:
        """Append an IR node. Output types come from onnx shape inference unless given."""
        for idx, out in enumerate(outputs):
            if not out:
                continue
            if types is not None and types[idx] is not None:
                self.graph.types[out] = types[idx]
            elif out not in self.graph.types:
                self.graph.types[out] = self.onnx_type(out)
        kwargs = {} if attrs is None else {"attrs": attrs}
        node = Node(op, tuple(inputs), tuple(outputs), name=self.origin.node,
                    origin=self.origin, **kwargs)
        self.graph.nodes.append(node)
        return node

    def temp(self, base: str, ttype: TensorType) -> str:
        name = self.graph.fresh_name(base)
        self.graph.types[name] = ttype
        return name

    def add_constant(self, base: str, value: np.ndarray) -> str:
        return self.graph.add_constant(self.graph.fresh_name(base), value)

    def alias_output(self, src: str, out: str) -> None:
        """Make ``out`` the same tensor as ``src`` (Identity-like lowering)."""
        if src in self.graph.constants:
            self.graph.add_constant(out, self.graph.constants[src])
        else:
            self.emit("Identity", [src], [out], types=[self.type(src)])


# ONNX INT4 / UINT4 initializers (4-bit weights of QDQ models): numpy type to hold them, bits
SUB_BYTE_INITIALIZERS = {onnx.TensorProto.INT4: (np.int8, 4), onnx.TensorProto.UINT4: (np.uint8, 4)}


def lowering_key(node: onnx.NodeProto) -> str:
    """The op registry key of a node: the op type in the default domain, else qualified by
    its domain (com.microsoft ops register as e.g. ``@lowering("com.microsoft.QGemm")``)."""
    if node.domain in DEFAULT_DOMAINS:
        return node.op_type
    return f"{node.domain}.{node.op_type}"


def _bind_hint(g, name: str) -> str:
    """How to make ``name`` a constant when it is computed from graph inputs."""
    from .bind import input_sources
    sources = input_sources(g, [name])
    if not sources:
        return ""
    return (f"; it comes from graph input {', '.join(repr(s) for s in sources)}: compile for "
            f"one value with --bind {sources[0]}=FILE.npy")


def _check_supported(model: onnx.ModelProto, label: str, ctx) -> None:
    """Every op of the model without a lowering, each on its own line (node, op, opset), in
    one error: a user sees the whole list at once, not one op per attempt. An op of another
    domain is named with its domain and that domain's opset."""
    versions = {o.domain: o.version for o in model.opset_import}
    lines = []
    for node in model.graph.node:
        if lowering_key(node) in registry.LOWERINGS:
            continue
        ctx.node = node
        if node.domain in DEFAULT_DOMAINS + (CONTRIB_DOMAIN,):
            lines.append(f"{ctx.origin.describe()}: unsupported op")
            continue
        lines.append(f"{label}: node '{ctx.origin.node}' ({node.domain}.{node.op_type}, "
                     f"{node.domain} opset {versions.get(node.domain, '?')}): unsupported op "
                     f"domain '{node.domain}'")
    if len(lines) == 1:
        raise UnsupportedError(lines[0])
    if lines:
        raise UnsupportedError(f"{label}: {len(lines)} nodes use unsupported ops:", lines)


def lower_model(model: onnx.ModelProto, label: str, user_opset: int = 0) -> Graph:
    """user_opset: the opset the user's file declared (errors name it); lowering sees
    ``model``'s opset, which the loader may have converted."""
    opset = model_opset(model)
    model = widen_narrow_types(model)  # float16 & co. computed in float32 (lowering/cast.py)
    shapes = static_shapes(model)
    g = model.graph
    graph = Graph(name=g.name or "model", nodes=[], inputs=[], outputs=[], types={},
                  source=label)
    ctx = LowerCtx(graph, shapes, label, opset)
    ctx.user_opset = user_opset or opset
    for init in g.initializer:
        try:
            value = numpy_helper.to_array(init)
            if init.data_type in SUB_BYTE_INITIALIZERS:  # unpacked, as int8 / uint8 values
                np_type, bits = SUB_BYTE_INITIALIZERS[init.data_type]
                value = np.asarray(value).astype(np_type)
                ctx.sub_byte[init.name] = bits
            graph.add_constant(init.name, value)
        except KeyError:
            pass  # unsupported dtype: reported if a node uses it
        except Exception as e:
            raise EdgeccError(f"{label}: cannot read initializer '{init.name}': {e}") from None
    for inp in g.input:
        if inp.name in graph.constants:
            continue
        elem, shape = shapes[inp.name]
        try:
            graph.types[inp.name] = TensorType(DType.from_onnx(elem), shape)
        except KeyError as e:
            raise UnsupportedError(f"{label}: input '{inp.name}' has unsupported type "
                                   f"{e.args[0]}") from None
        graph.inputs.append(inp.name)
    _check_supported(model, label, ctx)
    for node in g.node:
        ctx.node = node
        entry = registry.LOWERINGS[lowering_key(node)]  # _check_supported: every op has one
        for pos in entry.const_inputs:
            name = ctx.input(pos)
            if name and name not in graph.constants and ctx.materialize(name) is None:
                raise ctx.error(f"input {pos} ('{name}') must be a compile-time constant"
                                + _bind_hint(g, name))
        for i in node.input:
            if i and i not in graph.types and i not in graph.constants:
                if i in {t.name for t in g.initializer}:
                    raise ctx.error(f"initializer '{i}' has an unsupported data type")
        entry.fn(ctx, node)
    for out in g.output:
        if out.name not in graph.types:
            raise EdgeccError(f"{label}: graph output '{out.name}' has no static shape")
        graph.outputs.append(out.name)
    graph.remove_unused()
    return graph


def import_onnx(path: str, input_shapes=None, model: Optional[onnx.ModelProto] = None) -> Graph:
    """ONNX file (or proto) -> verified IR graph."""
    label = os.path.basename(path)
    static, user_opset = load_static_model(path, input_shapes, model=model)
    graph = lower_model(static, label, user_opset)
    graph.verify()
    return graph
