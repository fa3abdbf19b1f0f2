"""Put the int8 convolutions and max pools of a graph into NHWC, CMSIS-NN's layout.

Before:  y = QConv(x[N,C,H,W], w[M,C/g,kh,kw], b)          (NCHW, ONNX's layout)
After:   xt = Transpose[0,2,3,1](x);  yt = QConvNHWC(xt[N,H,W,C], w'[M,kh,kw,C], b)
         y = Transpose[0,3,1,2](yt)      -- and back-to-back Transposes cancel out

Preconditions: 2-D convolutions (4-D tensors) with per-tensor int8 activations; group 1
(weights OHWI) or depthwise (group == C, weights [1, kh, kw, M]). MaxPool on int8 4-D
tensors becomes MaxPoolNHWC, and QAveragePool with equal input and output quantization (what
arm_avgpool_s8 computes) QAveragePoolNHWC; a global one (window = the whole input, no pads)
on an NHWC tensor becomes QReduceMean over H and W there (the same sum of x - zx and the same
requantization by s_x / (s_y count): quant_ref.py), so it needs no transpose. Pointwise integer ops whose inputs all have the same shape
(QLut, QAdd, QMul, QuantizeLinear/DequantizeLinear per tensor, and the pointwise float ops a
target's rule accepts) run in whatever layout their inputs have, so a chain conv -> add -> conv
stays NHWC. Every other op sees NCHW: a Transpose is inserted where an NHWC tensor meets it,
and graph outputs are returned in NCHW.

Patched stages (passes/patch_plan.py): a tile's convolution goes NHWC like any other; its
per-side pads (pads = begin h, w, end h, w) need nothing new, since CMSIS-NN reads only the
begin pads and treats every input row or column past the end as padding, which is what the
end pads are. TileCopy and TilePaste become TileCopyNHWC / TilePasteNHWC when their inputs are
already NHWC (so the stage's full input is never transposed whole: its first tiles are cut
NCHW and transposed tile by tile).

Float layers, only where the target's rule asks for them (backends/x86/layout.py; the
Cortex-M rule ``convertible`` below never does): a float 2-D Conv (group 1 or depthwise)
becomes ConvNHWC with its weights permuted the same way (OHWI / 1HWM, no quantization), and a
float global AveragePool the rule accepts becomes ReduceMean over H and W when its input is
already NHWC (the mean over the same elements, so again no transpose); otherwise it stays an
NCHW AveragePool. A residual Add of a float ConvNHWC (one group, no activation) and another
tensor, and the activation after it, fuse into the ConvNHWC (``_fuse_residuals``).

Math: only memory order changes; the weights are permuted at compile time. A Transpose that
moves only size-1 axes (e.g. NHWC -> NCHW of an N x 1 x 1 x C tensor) is a Reshape (no copy).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List

import numpy as np

from ..ir import Activation, DType, Graph, Node, TensorType
from ..ir.ops import IR_OPS
from ..ir.ops.movement import TransposeAttrs
from ..ir.ops.reduce import ReduceAttrs
from ..ir.ops.shape_ops import ReshapeAttrs
from .fold_qdq_base import per_tensor
from .fuse_activation import FUSABLE_ACTIVATIONS

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)
AGNOSTIC = tuple(op for op, info in IR_OPS.items() if info.any_layout)


def _nhwc_shape(shape):
    return tuple(shape[i] for i in TO_NHWC)


def convertible(g: Graph, node: Node) -> bool:
    """The rule above: what goes NHWC on the Cortex-M targets (another target's layout pass
    can narrow it: backends/x86/layout.py)."""
    if node.op == "QConv":  # int8 in and out (uint8 ones stay NCHW: the portable kernel)
        x_t, w_t = g.types[node.inputs[0]], g.types[node.inputs[1]]
        if (x_t.rank != 4 or not per_tensor(x_t.quant) or x_t.dtype != DType.INT8
                or g.types[node.outputs[0]].dtype != DType.INT8):
            return False
        group, channels = node.attrs.group, x_t.shape[1]
        return group == 1 or (group == channels and w_t.shape[1] == 1)
    if node.op == "QAveragePool":  # arm_avgpool_s8: same scale and zero point in and out
        x_t, y_t = g.types[node.inputs[0]], g.types[node.outputs[0]]
        a = node.attrs
        return (x_t.rank == 4 and x_t.dtype == DType.INT8 and x_t.quant == y_t.quant
                and not a.count_include_pad and all(d == 1 for d in a.dilations))
    if node.op == "MaxPool":
        x_t = g.types[node.inputs[0]]
        return (x_t.rank == 4 and x_t.dtype in (DType.INT8,)
                and len([o for o in node.outputs if o]) == 1 and len(node.attrs.kernel) == 2
                and all(d == 1 for d in node.attrs.dilations))
    return False


def _global_average(g: Graph, node: Node) -> bool:
    """A QAveragePool or AveragePool over the whole of a 4-D input (one count: no pads)."""
    if node.op not in ("QAveragePool", "AveragePool") or g.types[node.inputs[0]].rank != 4:
        return False
    a, x_t = node.attrs, g.types[node.inputs[0]]
    return (tuple(a.kernel) == tuple(x_t.shape[2:]) and not any(a.pads)
            and g.types[node.outputs[0]].shape[2:] == (1, 1))


def _transpose(g: Graph, src: str, perm, origin: Node) -> Node:
    t = g.types[src]
    shape = tuple(t.shape[i] for i in perm)
    dst = g.fresh_name(f"{src}_{'nhwc' if perm == TO_NHWC else 'nchw'}")
    g.types[dst] = TensorType(t.dtype, shape, t.quant)
    kept = [axis for axis in perm if t.shape[axis] != 1]
    if kept == sorted(kept):  # only size-1 axes move: the bytes are already in order
        return Node("Reshape", (src,), (dst,), ReshapeAttrs(shape), origin.name, origin.origin)
    return Node("Transpose", (src,), (dst,), TransposeAttrs(tuple(perm)), origin.name,
                origin.origin)


def _permute_weights(g: Graph, node: Node) -> str:
    w_name = node.inputs[1]
    w = g.constants[w_name]
    depthwise = node.attrs.group != 1
    wt = np.ascontiguousarray(w.transpose(1, 2, 3, 0) if depthwise else w.transpose(0, 2, 3, 1))
    name = g.add_constant(g.fresh_name(f"{w_name}_{'1hwm' if depthwise else 'ohwi'}"), wt)
    q = g.types[w_name].quant  # None for float weights
    g.types[name] = TensorType(g.types[w_name].dtype, wt.shape, q if q is None else
                               type(q)(q.scale, q.zero_point, 3 if depthwise else 0, q.bits))
    return name


def to_nhwc(graph: Graph, convertible=convertible) -> Graph:
    g = graph.copy()
    nhwc: Dict[str, str] = {}   # NCHW tensor name -> its NHWC twin, where one exists
    nchw: Dict[str, str] = {}   # NHWC-only tensor name -> its NCHW twin, once made
    produced_nhwc = set()       # tensors that exist only in NHWC
    out: List[Node] = []

    def as_nhwc(name: str, origin: Node) -> str:
        if name in produced_nhwc:
            return name
        if name not in nhwc:
            t = _transpose(g, name, TO_NHWC, origin)
            out.append(t)
            nhwc[name] = t.outputs[0]
        return nhwc[name]

    def as_nchw(name: str, origin: Node) -> str:
        if name not in produced_nhwc:
            return name
        if name not in nchw:
            t = _transpose(g, name, TO_NCHW, origin)
            out.append(t)
            nchw[name] = t.outputs[0]
        return nchw[name]

    renamed: Dict[str, str] = {}  # original NCHW output name -> NHWC tensor standing for it
    permuted: Dict[tuple, str] = {}  # (weight, depthwise) -> its NHWC-ordered copy

    def emit_nhwc(node: Node, **changes) -> None:
        """node, its output now an NHWC tensor standing for the NCHW one."""
        y = node.outputs[0]
        y_nhwc = g.fresh_name(f"{y}_nhwc")
        g.types[y_nhwc] = TensorType(g.types[y].dtype, _nhwc_shape(g.types[y].shape),
                                     g.types[y].quant)
        out.append(node.replace(outputs=(y_nhwc,), **changes))
        produced_nhwc.add(y_nhwc)
        renamed[y] = y_nhwc

    for node in g.nodes:
        converts = convertible(g, node)  # judged on the NCHW types
        global_average = _global_average(g, node)
        if node.op == "AveragePool":  # float: only ever a mean over an NHWC input's H, W
            converts, global_average = False, converts and global_average
        # a pointwise op the rule accepts (float ones on x86) follows its inputs' layout
        follows = node.op in AGNOSTIC or (converts and IR_OPS[node.op].elementwise)
        converts = converts and not follows
        node = node.replace(inputs=tuple(renamed.get(i, i) for i in node.inputs))
        runtime = [i for i in node.inputs if i and not g.is_constant(i)]
        if node.op in ("TileCopy", "TilePaste") and all(i in produced_nhwc for i in runtime):
            emit_nhwc(node, op=node.op + "NHWC")
        elif converts:
            rest = list(node.inputs[1:])
            if node.op in ("QConv", "Conv"):  # one permuted copy per weight (a patched tile's)
                key = (rest[0], node.attrs.group != 1)
                if key not in permuted:
                    permuted[key] = _permute_weights(g, node)
                rest[0] = permuted[key]
            emit_nhwc(node, op=node.op + "NHWC", inputs=(as_nhwc(node.inputs[0], node), *rest))
        elif global_average and node.inputs[0] in produced_nhwc:
            emit_nhwc(node, op="QReduceMean" if node.op == "QAveragePool" else "ReduceMean",
                      attrs=ReduceAttrs((1, 2), True))
        elif (follows and runtime
                and all(i in produced_nhwc for i in runtime)
                and len({g.types[i].shape for i in runtime}) == 1
                and all(per_tensor(g.types[i].quant) or g.types[i].quant is None
                        for i in runtime)
                and (node.op not in ("QuantizeLinear", "DequantizeLinear")
                     or node.attrs.quant.axis is None)):
            emit_nhwc(node)
        else:
            out.append(node.replace(inputs=tuple(as_nchw(i, node) if i else i
                                                 for i in node.inputs)))
    # graph outputs keep their names and NCHW layout
    for o in g.outputs:
        if o in renamed:
            src = renamed[o]
            t = _transpose(g, src, TO_NCHW, Node("Transpose", (), (), name=o))
            out.append(t.replace(outputs=(o,)))
    g.nodes = out
    _fuse_residuals(g)
    g.remove_unused()
    return g


def _fuse_residuals(g: Graph) -> None:
    """y = Add(ConvNHWC(x, w, b), r), then optionally y' = act(y)  ->  ConvNHWC(x, w, b, r)
    with ``act`` as its activation (applied after the add): a residual connection added in
    the convolution's epilogue. Only float32 ConvNHWC with one group, no activation of its own,
    and an output read by the Add alone (and not a graph output); r a runtime tensor of the
    output's shape (NHWC: the Add followed its NHWC inputs, else a Transpose reads the conv).
    Float ConvNHWC exists only where a target's rule asked for it (x86-avx2), whose kernel
    computes this form (backends/x86/float_conv.py). The fused node takes the Add's place
    (after r's producer); the activation is fused under fuse_activation.py's conditions."""
    def produced_by():
        return {o: n for n in g.nodes for o in n.outputs if o}

    fused_ids = set()
    for add in [n for n in g.nodes if n.op == "Add" and len(n.inputs) == 2]:
        prod = produced_by()
        for k in (0, 1):
            conv, r = prod.get(add.inputs[k]), add.inputs[1 - k]
            if (conv is None or conv.op != "ConvNHWC" or conv.attrs.group != 1
                    or conv.attrs.activation is not None or len(conv.inputs) > 3
                    or g.types[conv.outputs[0]].dtype != DType.FLOAT32
                    or g.use_count(conv.outputs[0]) != 1 or conv.outputs[0] in g.outputs
                    or r == conv.outputs[0] or g.is_constant(r)
                    or g.types[r].dtype != DType.FLOAT32
                    or g.types[r].shape != g.types[conv.outputs[0]].shape):
                continue
            inputs = (tuple(conv.inputs) + ("",))[:3] + (r,)
            fused = conv.replace(inputs=inputs, outputs=add.outputs)
            g.nodes = [fused if n is add else n for n in g.nodes if n is not conv]
            fused_ids.add(id(fused))
            break
    for act in [n for n in g.nodes if n.op in FUSABLE_ACTIVATIONS]:
        conv = produced_by().get(act.inputs[0])
        if (conv is None or id(conv) not in fused_ids or conv.attrs.activation is not None
                or g.use_count(conv.outputs[0]) != 1 or conv.outputs[0] in g.outputs):
            continue
        fused = conv.replace(outputs=act.outputs, attrs=dataclasses.replace(
            conv.attrs, activation=Activation(act.op, act.attrs.alpha, act.attrs.beta)))
        g.nodes = [fused if n is conv else n for n in g.nodes if n is not act]
