"""Load an ONNX model and make it static: checked, one opset, every shape known.

Steps: read and parse, ``onnx.checker``, convert to ``TARGET_OPSET`` with onnx's version
converter (when the model is older), bind symbolic input dims from ``--input-shape``, then
alternate onnx shape inference and constant evaluation (onnx's reference evaluator on nodes
whose inputs are all constants, ``Shape`` of a static tensor) until nothing changes.
"""
from __future__ import annotations

import os
import re
from typing import Dict, Optional, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from ..errors import EdgeccError

TARGET_OPSET = 21
DEFAULT_DOMAINS = ("", "ai.onnx")
CONTRIB_DOMAIN = "com.microsoft"
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general")  # Brevitas' export_qonnx
QONNX_SHAPE_AS_INPUT = ("Quant", "BipolarQuant", "Trunc")  # elementwise on input 0

# The com.microsoft quantized ops edgecc lowers (compiler/lowering/qlinear.py). onnx has no
# schema for them, so their output shapes are inferred here as the standard op each wraps:
# (standard op, positions of its data inputs (None: QLinearConcat's 2, 5, 8, ...), position
# of the output zero point, whose type is the output's).
CONTRIB_SHAPE_AS = {
    "QLinearAdd": ("Add", (0, 3), 7),
    "QLinearMul": ("Mul", (0, 3), 7),
    "QLinearAveragePool": ("AveragePool", (0,), 4),
    "QLinearGlobalAveragePool": ("GlobalAveragePool", (0,), 4),
    "QLinearSigmoid": ("Sigmoid", (0,), 4),
    "QLinearLeakyRelu": ("LeakyRelu", (0,), 4),
    "QLinearSoftmax": ("Identity", (0,), 4),
    "QGemm": ("Gemm", (0, 3), 8),
    "QLinearConcat": ("Concat", None, 1),
    "QuantizeLinear": ("Identity", (0,), 2),     # onnxruntime's 4- and 16-bit Q/DQ before
    "DequantizeLinear": ("Identity", (0,), 1),   # opset 21; DQ's output: its scale's type
}


def parse_input_shapes(specs: Optional[Sequence[str]]) -> Dict[str, tuple]:
    """``["x=1,3,96,96"]`` -> ``{"x": (1, 3, 96, 96)}``."""
    shapes: Dict[str, tuple] = {}
    for spec in specs or ():
        name, sep, dims = spec.rpartition("=")
        try:
            if not sep:
                raise ValueError
            shapes[name] = tuple(int(d) for d in dims.replace("x", ",").split(",") if d)
        except ValueError:
            raise EdgeccError(f"--input-shape '{spec}': expected NAME=D0,D1,... "
                              "with integer dims") from None
    return shapes


def read_model(path: str) -> onnx.ModelProto:
    if not os.path.exists(path):
        raise EdgeccError(f"{path}: no such file")
    if os.path.isdir(path):
        raise EdgeccError(f"{path}: is a directory, expected an .onnx file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise EdgeccError(f"{path}: cannot read: {e.strerror}") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:
        raise EdgeccError(f"{path}: not an ONNX model (protobuf parse failed; "
                          "truncated or another format?)") from None
    if not model.graph.node and not model.graph.output:
        raise EdgeccError(f"{path}: not an ONNX model (no graph found)")
    if os.path.dirname(path):
        try:
            onnx.load_external_data_for_model(model, os.path.dirname(path))
        except Exception as e:  # external data is optional
            raise EdgeccError(f"{path}: cannot load external data: {e}") from None
    return model


def model_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in DEFAULT_DOMAINS:
            return imp.version
    return 1


def _check(model: onnx.ModelProto, label: str) -> None:
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgeccError(f"{label}: invalid ONNX model: {first}") from None


def _convert_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    if model_opset(model) >= TARGET_OPSET:
        return model
    try:
        return onnx.version_converter.convert_version(model, TARGET_OPSET)
    except Exception:
        # The converter lacks adapters for a few ops; lowerings accept the older forms too.
        return model


def _bind_input_shapes(model: onnx.ModelProto, shapes: Dict[str, tuple], label: str) -> None:
    initializers = {t.name for t in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    known = {i.name for i in graph_inputs}
    for name in shapes:
        if name not in known:
            raise EdgeccError(f"{label}: --input-shape names '{name}', but the model's inputs "
                              f"are {', '.join(sorted(known)) or 'none'}")
    for inp in graph_inputs:
        tt = inp.type.tensor_type
        if not inp.type.HasField("tensor_type"):
            raise EdgeccError(f"{label}: input '{inp.name}' is not a tensor")
        if inp.name in shapes:
            dims = shapes[inp.name]
            if tt.HasField("shape") and len(tt.shape.dim) != len(dims):
                raise EdgeccError(f"{label}: --input-shape {inp.name} has rank {len(dims)}, "
                                  f"the model says rank {len(tt.shape.dim)}")
            tt.ClearField("shape")
            for d in dims:
                tt.shape.dim.add().dim_value = d
            continue
        if not tt.HasField("shape"):
            raise EdgeccError(f"{label}: input '{inp.name}' has no shape; "
                              f"give it with --input-shape {inp.name}=D0,D1,...")
        for d in tt.shape.dim:
            if not d.HasField("dim_value") or d.dim_value < 0:
                sym = d.dim_param or "?"
                raise EdgeccError(f"{label}: input '{inp.name}' has a dynamic dim '{sym}'; "
                                  f"bind it with --input-shape {inp.name}=D0,D1,...")


INFERENCE_ERROR = re.compile(r"\(op_type:([^,]*), node name: ([^)]*)\): \[(\w+)\] (.*)")


def _strict_check(model: onnx.ModelProto, label: str, opset: int) -> None:
    """onnx's shape inference in strict mode: a node whose inputs, attributes and declared
    output shapes disagree (a Gemm's K, a Conv's channels, a value_info contradicting what
    the node computes) is the user's error, not something to compile around."""
    try:
        shape_inference.infer_shapes(model, check_type=False, strict_mode=True, data_prop=True)
    except Exception as e:
        found = INFERENCE_ERROR.search(str(e))
        if found:
            op, node, kind, message = found.groups()
            raise EdgeccError(f"{label}: node '{node}' ({op}, opset {opset}): "
                              f"{kind}: {message}") from None


def _infer(model: onnx.ModelProto, label: str) -> onnx.ModelProto:
    try:
        model = shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                             data_prop=True)
        while _infer_contrib(model):  # downstream of a contrib op: infer again
            model = shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                 data_prop=True)
        return model
    except Exception as e:
        first = str(e).strip().splitlines()[0]
        raise EdgeccError(f"{label}: shape inference failed: {first}") from None


def _contrib_output_type(node: onnx.NodeProto, shapes: Dict[str, tuple], opset: int):
    """(elem_type, shape) of a CONTRIB_SHAPE_AS op's output, or None if not known (yet)."""
    op, data_pos, zp_pos = CONTRIB_SHAPE_AS[node.op_type]
    attrs = [a for a in node.attribute if a.name not in ("channels_last", "opset")]
    if any(a.name == "channels_last" and a.i for a in node.attribute):
        return None  # NHWC: the lowering reports it
    if data_pos is None:
        data_pos = tuple(range(2, len(node.input), 3))
    data = [node.input[p] if p < len(node.input) else "" for p in data_pos]
    if not data or not all(d in shapes for d in data):
        return None
    zp = node.input[zp_pos] if zp_pos < len(node.input) else ""
    if zp in shapes:
        elem = shapes[zp][0]
    elif node.op_type == "QGemm" and not (len(node.input) > 7 and node.input[7]):
        elem = onnx.TensorProto.FLOAT  # no y_scale: QGemm's output is float
    else:
        elem = shapes[data[0]][0]
    names = [f"in{k}" for k in range(len(data))]
    if op == "Identity":
        attrs = []
    proxy = helper.make_node(op, names, ["out"])
    proxy.attribute.extend(attrs)
    graph = helper.make_graph([proxy], "contrib_shape", [
        helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, shapes[d][1])
        for n, d in zip(names, data)], [helper.make_tensor_value_info(
            "out", onnx.TensorProto.FLOAT, None)])
    inferred = shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))
    found = static_shapes(inferred).get("out")
    return None if found is None else (elem, found[1])


def _infer_contrib(model: onnx.ModelProto) -> bool:
    """Add value_info for the outputs of CONTRIB_SHAPE_AS ops and of QONNX's quantizers
    (float, input 0's shape); True if any was added."""
    shapes = static_shapes(model)
    added = False
    for node in model.graph.node:
        if (node.domain in QONNX_DOMAINS and node.op_type in QONNX_SHAPE_AS_INPUT
                and node.output and node.output[0] not in shapes and node.input
                and node.input[0] in shapes):
            found = (onnx.TensorProto.FLOAT, shapes[node.input[0]][1])
            model.graph.value_info.append(
                helper.make_tensor_value_info(node.output[0], found[0], found[1]))
            shapes[node.output[0]] = found
            added = True
            continue
        if (node.domain != CONTRIB_DOMAIN or node.op_type not in CONTRIB_SHAPE_AS
                or not node.output or node.output[0] in shapes):
            continue
        found = _contrib_output_type(node, shapes, min(model_opset(model), TARGET_OPSET))
        if found is not None:
            model.graph.value_info.append(
                helper.make_tensor_value_info(node.output[0], found[0], found[1]))
            shapes[node.output[0]] = found
            added = True
    return added


def static_shapes(model: onnx.ModelProto) -> Dict[str, tuple]:
    """Every tensor whose type onnx knows fully: name -> (elem_type, shape)."""
    found: Dict[str, tuple] = {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if all(d >= 0 for d in dims):
            found[vi.name] = (tt.elem_type, tuple(dims))
    for t in g.initializer:
        found[t.name] = (t.data_type, tuple(t.dims))
    return found


def _constant_values(model: onnx.ModelProto) -> Dict[str, np.ndarray]:
    values = {}
    for t in model.graph.initializer:
        try:
            values[t.name] = numpy_helper.to_array(t)
        except Exception:
            pass
    return values


def _fold_once(model: onnx.ModelProto) -> bool:
    """Evaluate nodes whose inputs are all constants; turn them into initializers."""
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    values = _constant_values(model)
    shapes = static_shapes(model)
    graph_outputs = {o.name for o in g.output}
    kept, changed = [], False
    for node in g.node:
        if node.domain not in DEFAULT_DOMAINS:
            kept.append(node)
            continue
        inputs = [i for i in node.input if i]
        folded = None
        if node.op_type == "Shape" and inputs and inputs[0] in shapes:
            start = next((a.i for a in node.attribute if a.name == "start"), 0)
            end = next((a.i for a in node.attribute if a.name == "end"), None)
            folded = [np.array(shapes[inputs[0]][1][start:end], dtype=np.int64)]
        elif node.op_type == "Size" and inputs and inputs[0] in shapes:
            folded = [np.array(int(np.prod(shapes[inputs[0]][1])), dtype=np.int64)]
        elif (all(i in values for i in inputs) and node.op_type not in ("RandomNormal",
              "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
              "Dropout", "If", "Loop", "Scan", "DequantizeLinear", "QuantizeLinear")):
            try:
                ref_model = helper.make_model(
                    helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(
                        o, onnx.TensorProto.UNDEFINED, None) for o in node.output if o]),
                    opset_imports=list(model.opset_import), ir_version=model.ir_version)
                ev = ReferenceEvaluator(ref_model)
                folded = ev.run(None, {i: values[i] for i in inputs})
            except Exception:
                folded = None
        if folded is None or any(o in graph_outputs for o in node.output):
            kept.append(node)
            continue
        outs = [o for o in node.output if o]
        for name, value in zip(outs, folded):
            arr = np.asarray(value)
            try:
                g.initializer.append(numpy_helper.from_array(arr, name))
            except Exception:
                kept.append(node)
                break
            values[name] = arr
        else:
            changed = True
            continue
    if changed:
        del g.node[:]
        g.node.extend(kept)
        for vi in list(g.value_info):
            if vi.name in values:
                g.value_info.remove(vi)
    return changed


def _explicit_defaults(model: onnx.ModelProto) -> None:
    """Spell out attribute defaults that onnx's shape inference gets wrong: STFT's onesided
    is 1 by the spec (and in onnxruntime and the reference), inferred as 0 when absent."""
    for node in model.graph.node:
        if node.op_type == "STFT" and node.domain in DEFAULT_DOMAINS and not any(
                a.name == "onesided" for a in node.attribute):
            node.attribute.append(helper.make_attribute("onesided", 1))


from .control_flow import unroll_once  # noqa: E402  (it imports this module's helpers)


def load_static_model(path: str, input_shapes: Optional[Dict[str, tuple]] = None,
                      model: Optional[onnx.ModelProto] = None):
    """Read (unless ``model`` is given), check, convert and make every shape static.

    Returns (static model, the opset the user's model declared)."""
    label = os.path.basename(path)
    if model is None:
        model = read_model(path)
    else:
        model = onnx.ModelProto.FromString(model.SerializeToString())
    _check(model, label)
    user_opset = model_opset(model)
    model = _convert_opset(model)
    _bind_input_shapes(model, input_shapes or {}, label)
    _explicit_defaults(model)
    # Initializers listed as graph inputs are constants for an AOT compiler.
    inits = {t.name for t in model.graph.initializer}
    for inp in [i for i in model.graph.input if i.name in inits]:
        model.graph.input.remove(inp)
    _strict_check(model, label, user_opset)
    for _ in range(32):
        model = _infer(model, label)
        folded = _fold_once(model)
        if not (unroll_once(model, _constant_values(model), static_shapes(model)) or folded):
            break
    return model, user_opset
