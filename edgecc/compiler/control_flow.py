"""Control flow unrolled into straight-line ONNX: If, Loop and Scan.

An ahead-of-time compiler with static shapes runs a known number of steps, so the loader
rewrites each control-flow node, once the values that decide it are constants (it runs this
between constant-folding rounds, ``unroll_once``), into the nodes of its body graphs:

- ``If`` with a constant condition -> the chosen branch's nodes. With a condition known only at
  run time -> both branches' nodes and a ``Where(cond, then, else)`` per output, when the two
  branches give outputs of one shape (otherwise the output shape depends on the data: error).
- ``Loop`` with a constant trip count M and a loop condition that only passes through (the
  body returns its condition input, or a constant true) -> M copies of the body; iteration k's
  ``iter_num`` is the constant k, the loop-carried values chain from copy to copy, and the
  scan outputs are stacked along a new axis 0 (Unsqueeze + Concat).
- ``Scan`` (opset 9+) with static scan-input shapes -> one body copy per step; step t reads
  slice t of each scan input along its axis (Gather with a constant index, the axis dropped,
  reversed for direction 1), states chain, and scan outputs are stacked along their axis in
  step order (reversed for direction 1).

Each copy's tensors are renamed ``<node>__<k>__<name>``; names the body takes from the outer
scope keep theirs (in nested subgraphs too). Whatever cannot be unrolled stays as it is, and the
op's lowering (compiler/lowering/control_flow.py) names the reason.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _defined(graph: onnx.GraphProto) -> set:
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for n in graph.node:
        names.update(o for o in n.output if o)
    return names


def _rename_refs(graph: onnx.GraphProto, mapping: Dict[str, str]) -> None:
    """Rename outer-scope references of a nested subgraph (names it does not define)."""
    local = _defined(graph)
    for n in graph.node:
        for k, name in enumerate(n.input):
            if name in mapping and name not in local:
                n.input[k] = mapping[name]
        for a in n.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                _rename_refs(sub, {k: v for k, v in mapping.items() if k not in local})
    for o in graph.output:
        if o.name in mapping and o.name not in local:
            o.name = mapping[o.name]


def _copy_body(body: onnx.GraphProto, prefix: str, bound: Dict[str, str], out_init: list
               ) -> (List[onnx.NodeProto], Dict[str, str]):
    """The body's nodes with its own tensors renamed under ``prefix``; ``bound``: body input
    name -> outer tensor. Returns (nodes, mapping of every body name to its outer name)."""
    mapping = dict(bound)
    for t in body.initializer:
        mapping[t.name] = prefix + t.name
        init = onnx.TensorProto()
        init.CopyFrom(t)
        init.name = prefix + t.name
        out_init.append(init)
    for n in body.node:
        for o in n.output:
            if o:
                mapping[o] = prefix + o
    nodes = []
    for n in body.node:
        c = onnx.NodeProto()
        c.CopyFrom(n)
        c.name = prefix + (n.name or n.op_type)
        c.input[:] = [mapping.get(i, i) for i in n.input]
        c.output[:] = [mapping.get(o, o) if o else "" for o in n.output]
        for a in c.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                _rename_refs(sub, mapping)
        nodes.append(c)
    return nodes, mapping


def _const(name: str, value, out_init: list) -> str:
    out_init.append(numpy_helper.from_array(np.asarray(value), name))
    return name


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _stack(parts: List[str], axis: int, out: str, prefix: str, nodes: list, inits: list):
    """out = Concat(Unsqueeze(p, axis) for p in parts) along ``axis``."""
    axes = _const(prefix + "stack_axes", np.array([axis], dtype=np.int64), inits)
    ups = []
    for k, p in enumerate(parts):
        ups.append(f"{prefix}{k}__unsq")
        nodes.append(helper.make_node("Unsqueeze", [p, axes], [ups[-1]], name=ups[-1]))
    nodes.append(helper.make_node("Concat", ups, [out], axis=axis, name=prefix + "stack"))


def _identity(src: str, dst: str, nodes: list) -> None:
    nodes.append(helper.make_node("Identity", [src], [dst], name=dst + "__id"))


def _unroll_if(node, values, model) -> Optional[tuple]:
    then_g, else_g = _attr(node, "then_branch"), _attr(node, "else_branch")
    nodes, inits = [], []
    cond = node.input[0]
    if cond in values:
        branch = then_g if bool(np.asarray(values[cond]).reshape(-1)[0]) else else_g
        body, mapping = _copy_body(branch, f"{node.name or 'if'}__", {}, inits)
        nodes += body
        for out, res in zip(node.output, branch.output):
            _identity(mapping.get(res.name, res.name), out, nodes)
        return nodes, inits
    picked = []
    for tag, branch in (("then", then_g), ("else", else_g)):
        body, mapping = _copy_body(branch, f"{node.name or 'if'}__{tag}__", {}, inits)
        nodes += body
        picked.append([mapping.get(r.name, r.name) for r in branch.output])
    if not _same_shapes(model, nodes, inits, picked):
        return None
    for out, a, b in zip(node.output, *picked):
        nodes.append(helper.make_node("Where", [cond, a, b], [out], name=out + "__select"))
    return nodes, inits


def _same_shapes(model, nodes, inits, picked) -> bool:
    """Whether each pair of branch outputs has one known static shape."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.node.extend(nodes)
    probe.graph.initializer.extend(inits)
    try:
        inferred = onnx.shape_inference.infer_shapes(probe)
    except Exception:
        return False
    from .loader import static_shapes
    shapes = static_shapes(inferred)
    return all(a in shapes and b in shapes and shapes[a][1] == shapes[b][1]
               for a, b in zip(*picked))


def _unroll_loop(node, values) -> Optional[tuple]:
    body = _attr(node, "body")
    trip, cond = (node.input[0] if node.input else ""), (node.input[1] if len(node.input) > 1
                                                         else "")
    if not trip or trip not in values or (cond and cond not in values):
        return None
    if cond and not bool(np.asarray(values[cond]).reshape(-1)[0]):
        count = 0
    else:
        count = int(np.asarray(values[trip]).reshape(-1)[0])
    cond_out = body.output[0].name
    passes = cond_out == body.input[1].name or any(
        n.output and n.output[0] == cond_out and (
            (n.op_type == "Identity" and n.input[0] == body.input[1].name)
            or (n.op_type == "Constant" and bool(numpy_helper.to_array(
                _attr(n, "value")).reshape(-1)[0])))
        for n in body.node)
    if not passes or count < 0:
        return None
    carried = list(node.input[2:])
    n_scan = len(body.output) - 1 - len(carried)
    if count == 0 and n_scan:
        return None
    nodes, inits = [], []
    prefix = f"{node.name or 'loop'}__"
    scans: List[List[str]] = [[] for _ in range(n_scan)]
    cond_now = cond or _const(prefix + "true", np.array(True), inits)
    for k in range(count):
        it = _const(f"{prefix}{k}__iter", np.array(k, dtype=np.int64), inits)
        bound = {body.input[0].name: it, body.input[1].name: cond_now}
        bound.update({b.name: v for b, v in zip(body.input[2:], carried)})
        copy, mapping = _copy_body(body, f"{prefix}{k}__", bound, inits)
        nodes += copy
        outs = [mapping.get(o.name, o.name) for o in body.output]
        cond_now = outs[0]
        carried = outs[1:1 + len(carried)]
        for s, name in zip(scans, outs[1 + len(carried):]):
            s.append(name)
    for out, v in zip(node.output, carried):
        _identity(v, out, nodes)
    for j, (out, parts) in enumerate(zip(node.output[len(carried):], scans)):
        _stack(parts, 0, out, f"{prefix}scan{j}__", nodes, inits)
    return nodes, inits


def _unroll_scan(node, shapes) -> Optional[tuple]:
    body = _attr(node, "body")
    n_scan = _attr(node, "num_scan_inputs")
    n_state = len(node.input) - n_scan
    scan_in = list(node.input[n_state:])
    in_axes = list(_attr(node, "scan_input_axes", [0] * n_scan))
    in_dirs = list(_attr(node, "scan_input_directions", [0] * n_scan))
    n_out = len(body.output) - n_state
    out_axes = list(_attr(node, "scan_output_axes", [0] * n_out))
    out_dirs = list(_attr(node, "scan_output_directions", [0] * n_out))
    if any(x not in shapes for x in scan_in):
        return None
    lens = set()
    for x, ax in zip(scan_in, in_axes):
        rank = len(shapes[x][1])
        lens.add(shapes[x][1][ax % rank])
    if len(lens) != 1:
        return None
    steps = lens.pop()
    if steps == 0 and n_out:
        return None
    nodes, inits = [], []
    prefix = f"{node.name or 'scan'}__"
    states = list(node.input[:n_state])
    outs_per_step: List[List[str]] = [[] for _ in range(n_out)]
    for t in range(steps):
        bound = {b.name: s for b, s in zip(body.input[:n_state], states)}
        for j, (x, ax, d) in enumerate(zip(scan_in, in_axes, in_dirs)):
            idx = _const(f"{prefix}{t}__idx{j}", np.array(steps - 1 - t if d else t,
                                                          dtype=np.int64), inits)
            sl = f"{prefix}{t}__slice{j}"
            nodes.append(helper.make_node("Gather", [x, idx], [sl], axis=ax % len(
                shapes[x][1]), name=sl))
            bound[body.input[n_state + j].name] = sl
        copy, mapping = _copy_body(body, f"{prefix}{t}__", bound, inits)
        nodes += copy
        outs = [mapping.get(o.name, o.name) for o in body.output]
        states = outs[:n_state]
        for s, name in zip(outs_per_step, outs[n_state:]):
            s.append(name)
    for out, v in zip(node.output, states):
        _identity(v, out, nodes)
    for j, (out, parts) in enumerate(zip(node.output[n_state:], outs_per_step)):
        axis = out_axes[j]
        if axis < 0:  # relative to the stacked output's rank: the body output's rank + 1
            axis += len(body.output[n_state + j].type.tensor_type.shape.dim) + 1
        _stack(parts[::-1] if out_dirs[j] else parts, axis, out, f"{prefix}out{j}__", nodes,
               inits)
    return nodes, inits


def unroll_once(model: onnx.ModelProto, values: Dict[str, np.ndarray],
                shapes: Dict[str, tuple]) -> bool:
    """Unroll every top-level If/Loop/Scan that can be; True if any was."""
    from .loader import DEFAULT_DOMAINS, model_opset
    g = model.graph
    kept, changed = [], False
    for node in g.node:
        done = None
        if node.domain in DEFAULT_DOMAINS:
            if node.op_type == "If":
                done = _unroll_if(node, values, model)
            elif node.op_type == "Loop":
                done = _unroll_loop(node, values)
            elif node.op_type == "Scan" and _attr(node, "num_scan_inputs") is not None \
                    and not any(a.name == "directions" for a in node.attribute) \
                    and model_opset(model) >= 9:
                done = _unroll_scan(node, shapes)
        if done is None:
            kept.append(node)
            continue
        nodes, inits = done
        kept.extend(nodes)
        g.initializer.extend(inits)
        changed = True
    if changed:
        del g.node[:]
        g.node.extend(kept)
    return changed
