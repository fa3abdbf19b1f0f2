"""Graph inputs bound to values at compile time (``--bind NAME=FILE``).

An ahead-of-time compiler needs every operand that decides a shape (Reshape's shape, a
reduction's axes, Resize's sizes, Range's bounds, ...) as a constant. A model that takes such
an operand as a graph input is compiled for one value of it: ``bind_inputs`` turns the named
inputs into initializers, after which the loader folds what they feed. ``shape_operand_inputs``
names the graph inputs that reach a compile-time operand (directly or through other nodes),
which ``edgecc verify --inputs`` binds from its data and the front end's error suggests binding.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional, Set

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import EdgeccError


def read_binds(specs: Optional[Iterable[str]]) -> Dict[str, np.ndarray]:
    """``["NAME=FILE", ...]`` (FILE: .npy, or .npz holding NAME) -> {name: array}."""
    binds: Dict[str, np.ndarray] = {}
    for spec in specs or ():
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise EdgeccError(f"--bind {spec}: expected NAME=FILE (.npy, or .npz holding NAME)")
        try:
            if path.endswith(".npz"):
                with np.load(path) as data:
                    if name not in data.files:
                        raise EdgeccError(f"--bind {spec}: {path} holds no array '{name}' "
                                          f"(it has {', '.join(data.files) or 'none'})")
                    binds[name] = data[name]
            else:
                binds[name] = np.load(path)
        except (OSError, ValueError) as e:
            raise EdgeccError(f"--bind {spec}: cannot read {path}: {e}") from None
    return binds


def bind_inputs(model: onnx.ModelProto, binds: Dict[str, np.ndarray],
                label: str) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs named in ``binds`` are initializers of those values
    (element type and declared static dims must match)."""
    if not binds:
        return model
    inputs = {i.name: i for i in model.graph.input}
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for name in sorted(binds):
        if name not in inputs:
            raise EdgeccError(f"{label}: --bind {name}: the model has no input '{name}' "
                              f"(inputs: {', '.join(inputs) or 'none'})")
        ttype = inputs[name].type.tensor_type
        want = helper.tensor_dtype_to_np_dtype(ttype.elem_type)
        value = np.asarray(binds[name])
        if value.dtype != want and not (value.dtype.kind == want.kind and
                                        np.can_cast(value.dtype, want)):
            raise EdgeccError(f"{label}: --bind {name}: the value is {value.dtype}, the input "
                              f"is {want}")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        if ttype.HasField("shape") and (len(dims) != value.ndim or any(
                d is not None and d != s for d, s in zip(dims, value.shape))):
            raise EdgeccError(f"{label}: --bind {name}: the value has shape {list(value.shape)}, "
                              f"the input {['?' if d is None else d for d in dims]}")
        m.graph.initializer.append(numpy_helper.from_array(value.astype(want), name))
        for vi in list(m.graph.input):
            if vi.name == name:
                m.graph.input.remove(vi)
    return m


def input_sources(graph: onnx.GraphProto, tensors: Iterable[str]) -> List[str]:
    """The graph inputs (not initializers) that ``tensors`` are computed from."""
    producer = {o: n for n in graph.node for o in n.output}
    inits = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in inits]
    seen: Set[str] = set()
    todo = [t for t in tensors if t]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        node = producer.get(t)
        # Shape and Size read only the (static) shape of their input, not its values.
        if node is not None and node.op_type not in ("Shape", "Size"):
            todo.extend(i for i in node.input if i)
            todo.extend(_outer_names(node))
    return [i for i in inputs if i in seen]


def _outer_names(node: onnx.NodeProto) -> List[str]:
    """Names the node's subgraphs (If/Loop/Scan bodies) read from the enclosing scope."""
    names: List[str] = []
    for a in node.attribute:
        for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            local = {i.name for i in sub.input} | {t.name for t in sub.initializer}
            local |= {o for n in sub.node for o in n.output}
            for n in sub.node:
                names.extend(i for i in n.input if i and i not in local)
                names.extend(x for x in _outer_names(n) if x not in local)
            names.extend(o.name for o in sub.output if o.name not in local)
    return names


def shape_operand_inputs(model: onnx.ModelProto) -> List[str]:
    """The graph inputs that some op needs as a compile-time constant (its lowering's
    ``const_inputs``), directly or through other nodes."""
    from . import lowering, registry  # noqa: F401  (lowering: registers)
    slots = []
    for node in model.graph.node:
        entry = registry.LOWERINGS.get(node.op_type)
        for pos in entry.const_inputs if entry else ():
            if pos < len(node.input) and node.input[pos]:
                slots.append(node.input[pos])
    return input_sources(model.graph, slots)


def binds_from_inputs(model: onnx.ModelProto, spec: str) -> Dict[str, np.ndarray]:
    """``edgecc verify --inputs SPEC``: the values (first sample) of the inputs that feed
    compile-time operands, read from SPEC (.npz keyed by input name, or a folder of
    NAME.npy)."""
    names = shape_operand_inputs(model)
    found: Dict[str, np.ndarray] = {}
    for name in names:
        if os.path.isdir(spec) and os.path.exists(os.path.join(spec, f"{name}.npy")):
            found[name] = np.load(os.path.join(spec, f"{name}.npy"))
        elif spec.endswith(".npz") and os.path.exists(spec):
            with np.load(spec) as data:
                if name in data.files:
                    found[name] = data[name]
    return found
