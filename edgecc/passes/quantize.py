"""Post-training quantization: put QuantizeLinear/DequantizeLinear around every op that
fold-qdq can make integer, with int8 parameters from calibrated ranges.

Before (float IR; in quantize mode the driver runs this before fuse-activation):
    t = Conv(x, W, b);  y = Relu(t);  z = Reshape(y);  out = Gemm(z, W2, b2)
After:
    x_q = Q(x);  x_dq = DQ(x_q)
    t = Conv(x_dq, W, b);  y_float = Relu(t);  y_q = Q(y_float);  y = DQ(y_q)
    z_float = Reshape(y);  z_q = Q(z_float);  z = DQ(z_q)              (z_q shares y_q's params)
    out_float = Gemm(z, W2, b2);  out_q = Q(out_float);  out = DQ(out_q)
and fuse-activation, fold-qdq and dead-code then give
    x_q = Q(x);  y_q = QConv[Relu](x_q, W_q, b_q);  z_q = Reshape(y_q);
    out_q = QGemm(z_q, W2_q, b2_q);  out = DQ(out_q)
so the graph stays float in, float out; weights stay float constants here and fold-qdq's
rules quantize them (per output channel, symmetric, max|W[c]| / 127; bias int32).

Which ops: a node is quantized when fold-qdq has a rule for its op (FOLD_RULES), the rule
accepts it with int8 inputs and output (probed on a scratch copy of the graph, so an op a
rule refuses gets no useless Q/DQ), its name is not in ``exclude``, and every float runtime
input and its output have parameters (a range from calibration). Connected groups of
quantized nodes without a Conv/Gemm/MatMul stay float (a lone Relu between float ops would
only add work and error). A tensor gets a Q/DQ pair when it has parameters and its producer
or a consumer is quantized, except the edge from a quantized producer to a quantized
Relu/Clip that is its only consumer, when the two become one integer op with a clamp:
Conv/Gemm/MatMul through fuse-activation (only Relu/Clip fold into int8 ops, so the driver
fuses after this pass: a Sigmoid or HardSwish stays a separate op, a QLut), Add/Mul when the
clamp's fold rule takes the pair. Tensors next to a Q/DQ already keep it, so the pass is
idempotent. Excluded nodes can still sit between a DQ and a Q (their neighbours are int8):
fold-qdq's ``keep_float`` leaves them alone.

Why a node stays float (``why_float``, which the driver turns into a warning): for each float
layer that is not excluded and not quantized, one reason: no fold rule for its op
(``no int8 kernel for Op``), a float tensor it reads or writes without a range (``range not
finite``: calibration saw only inf/NaN there, named in ``nonfinite``; else ``no calibrated
range``), a rule that refuses the calibrated parameters but takes sane ones (``range too
large/small for int8 scales``) or refuses the node whatever the parameters, or a light island.
Alias ops (Reshape...) and activations that fuse into their float producer are not layers of
their own (as in ``edgecc analyze``).

Math (QUANT.md): activations per tensor, asymmetric int8 from the range widened to hold 0:
s = (hi - lo) / 255, z = round(-128 - lo / s). The outputs of ops that only move values
(Reshape, Transpose, MaxPool, Pad, Slice, Resize nearest, Gather) take their input's
parameters so they stay plain int8 moves; Softmax outputs use 1/256, -128 (TFLite).
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Set, Tuple

import numpy as np

from ..ir import DType, Graph, Node, Origin, QuantParams, TensorType
from ..ir.ops import IR_OPS, op_info
from ..ir.ops.quantize_linear import QuantAttrs, QuantizeAttrs
from ..ir.quant import choose_qparams
from .fold_qdq import FOLD_RULES, QIn
from .fuse_activation import FUSABLE_PRODUCERS, takes_activation

SHARED_PARAMS = tuple(op for op, info in IR_OPS.items() if info.quant == "shared")
FIXED_PARAMS = {"Softmax": (1.0 / 256.0, -128)}
CLAMPS = ("Relu", "Clip")
BOUNDARY = ("QuantizeLinear", "DequantizeLinear")
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")


def activation_params(lo: float, hi: float) -> QuantParams:
    scale, zero_point = choose_qparams(lo, hi, np.int8)
    return QuantParams((scale,), (zero_point,), None, 8)


def quantize_graph(graph: Graph, ranges: Dict[str, Tuple[float, float]],
                   exclude: Iterable[str] = (), why_float: Optional[Dict[str, str]] = None,
                   nonfinite: Iterable[str] = ()) -> Graph:
    """``why_float``: when given, filled with {node name: reason} for each float layer that
    stays float though not in ``exclude`` (``nonfinite``: tensors calibration saw only as
    inf/NaN)."""
    g = graph.copy()
    exclude = set(exclude)
    # tensors next to a Q/DQ already (a second run) keep those parameters
    known = {n.inputs[0] if n.op == "QuantizeLinear" else n.outputs[0]: n.attrs.quant
             for n in g.nodes if n.op in BOUNDARY}
    params: Dict[str, QuantParams] = {}
    for t in g.inputs:
        if _runtime_float(g, t) and t in ranges:
            params[t] = known.get(t) or activation_params(*ranges[t])
    quantized: Set[int] = set()  # ids of the nodes to quantize
    q_outs: Dict[int, Optional[QuantParams]] = {}
    for node in g.nodes:
        q_out = q_outs[id(node)] = _output_params(g, node, params, ranges, known)
        if node.name not in exclude and q_out is not None and _folds(g, node, params, q_out):
            quantized.add(id(node))
            params[node.outputs[0]] = q_out
            continue
        for o in node.outputs:
            if o and _runtime_float(g, o) and (o in known or o in ranges):
                params[o] = known.get(o) or activation_params(*ranges[o])

    producers, consumers = g.producers(), g.consumers()
    candidates = quantized
    quantized = _drop_light_islands(g, quantized, producers)
    if why_float is not None:
        nonfinite = set(nonfinite)
        for node in g.nodes:
            if id(node) in quantized or node.name in exclude:
                continue
            reason = _float_reason(g, node, params, q_outs[id(node)], ranges, nonfinite,
                                   id(node) in candidates, quantized, producers)
            if reason:
                why_float[node.name or node.outputs[0]] = reason
    wanted = []
    for t in list(g.inputs) + [o for n in g.nodes for o in n.outputs if o]:
        p, users = producers.get(t), consumers.get(t, [])
        if t not in params or (p is not None and p.op in BOUNDARY):
            continue
        if any(u.op in BOUNDARY for u in users):
            continue
        if not ((p is not None and id(p) in quantized) or any(id(u) in quantized for u in users)):
            continue
        if (p is not None and id(p) in quantized and t not in g.outputs and len(users) == 1
                and users[0].op in CLAMPS and id(users[0]) in quantized
                and _fuses_with_clamp(g, p, users[0], params)):
            continue  # the pair becomes one integer op with a clamp
        wanted.append(t)
    return _insert(g, wanted, params) if wanted else g


def _drop_light_islands(g: Graph, quantized: Set[int], producers) -> Set[int]:
    """Groups of quantized nodes joined by tensors, none of them a Conv/Gemm/MatMul, stay
    float: between float ops a lone Relu or Reshape would only add Q/DQ work and error."""
    parent = {k: k for k in quantized}

    def root(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for node in g.nodes:
        if id(node) not in quantized:
            continue
        for i in node.inputs:
            p = producers.get(i) if i else None
            if p is not None and id(p) in quantized:
                parent[root(id(node))] = root(id(p))
    heavy = {root(id(n)) for n in g.nodes if id(n) in quantized and n.op in WEIGHTED_OPS}
    return {k for k in quantized if root(k) in heavy}


def _float_reason(g: Graph, node: Node, params, q_out, ranges, nonfinite: Set[str],
                  light: bool, quantized: Set[int], producers) -> Optional[str]:
    """Why a float layer that could be int8 stays float; None when it is not such a layer."""
    outs = [o for o in node.outputs if o]
    if (node.op in BOUNDARY or op_info(node.op).alias or len(outs) != 1
            or not _runtime_float(g, outs[0])):
        return None
    if op_info(node.op).activation:  # fuse-activation folds it into its float producer
        p = producers.get(node.inputs[0])
        if p is not None and id(p) not in quantized and takes_activation(g, p):
            return None
    if light:
        return "no Conv/Gemm/MatMul among its int8 neighbours"
    if FOLD_RULES.get(node.op) is None:
        return f"no int8 kernel for {node.op}"
    floats = [i for i in node.inputs if i and _runtime_float(g, i)]
    if not floats:
        return "no runtime float input"
    unranged = [i for i in floats if i not in params] + ([outs[0]] if q_out is None else [])
    if any(t in nonfinite for t in unranged):
        return "range not finite: only inf/NaN on the calibration data"
    if unranged:
        return "no calibrated range"
    sane = activation_params(-1.0, 1.0)
    if _folds(g, node, {i: sane for i in floats},
              q_out if node.op in FIXED_PARAMS else sane):
        return "range too large/small for int8 scales"
    return f"no int8 kernel for this {node.op} (its attributes or input types)"


def _runtime_float(g: Graph, t: str) -> bool:
    return bool(t) and not g.is_constant(t) and g.types[t].dtype == DType.FLOAT32


def _output_params(g: Graph, node: Node, params, ranges, known) -> Optional[QuantParams]:
    outs = [o for o in node.outputs if o]
    if len(outs) != 1 or not _runtime_float(g, outs[0]) or node.op in BOUNDARY:
        return None
    if outs[0] in known:
        return known[outs[0]]
    if node.op in SHARED_PARAMS:
        data = next((i for i in node.inputs if _runtime_float(g, i)), None)
        return params.get(data)
    if node.op in FIXED_PARAMS:
        scale, zero_point = FIXED_PARAMS[node.op]
        return QuantParams((scale,), (zero_point,), None, 8)
    return activation_params(*ranges[outs[0]]) if outs[0] in ranges else None


def _folds(g: Graph, node: Node, params, q_out: QuantParams) -> bool:
    """Would fold-qdq's rule turn this node, given int8 inputs and output, into integer ops?"""
    rule = FOLD_RULES.get(node.op)
    runtime = [i for i in node.inputs if i and not g.is_constant(i)]
    floats = [i for i in runtime if _runtime_float(g, i)]
    if rule is None or not floats or any(i not in params for i in floats):
        return False
    scratch = g.copy()
    ins = []
    for i in node.inputs:
        if not i:
            ins.append(None)
        elif g.is_constant(i):
            ins.append(QIn(i, None, True))
        elif i in params:
            fake = scratch.fresh_name(f"{i}_probe_q")
            scratch.types[fake] = TensorType(DType.INT8, g.types[i].shape, params[i])
            ins.append(QIn(fake, params[i], False))
        else:
            ins.append(QIn(i, None, False))
    out = scratch.fresh_name(f"{node.outputs[0]}_probe_q")
    scratch.types[out] = TensorType(DType.INT8, g.types[node.outputs[0]].shape, q_out)
    return rule(scratch, node, ins, out) is not None


def _fuses_with_clamp(g: Graph, prod: Node, clamp: Node, params) -> bool:
    """Does producer -> Relu/Clip become one integer op? Conv/Gemm/MatMul: fuse-activation
    (which runs after this pass) fuses the clamp; other producers (Add, Mul...): when the
    clamp's fold rule, with the producer fed by DQ nodes, returns nodes that no longer read
    the producer's output."""
    if prod.op in FUSABLE_PRODUCERS:
        return getattr(prod.attrs, "activation", None) is None
    rule = FOLD_RULES.get(clamp.op)
    if rule is None:
        return False
    scratch = g.copy()
    dqs, inputs = [], []
    for i in prod.inputs:
        if i in params and _runtime_float(g, i):
            q = scratch.fresh_name(f"{i}_probe_q")
            scratch.types[q] = TensorType(DType.INT8, g.types[i].shape, params[i])
            d = scratch.fresh_name(f"{i}_probe_dq")
            scratch.types[d] = g.types[i]
            dqs.append(Node("DequantizeLinear", (q,), (d,), QuantAttrs(params[i])))
            inputs.append(d)
        else:
            inputs.append(i)
    at = next(k for k, n in enumerate(scratch.nodes) if n is prod)
    scratch.nodes[at:at + 1] = dqs + [prod.replace(inputs=tuple(inputs))]
    out = scratch.fresh_name(f"{clamp.outputs[0]}_probe_q")
    scratch.types[out] = TensorType(DType.INT8, g.types[clamp.outputs[0]].shape,
                                    params[clamp.outputs[0]])
    folded = rule(scratch, clamp, [QIn(clamp.inputs[0], None, False)], out)
    return folded is not None and all(prod.outputs[0] not in n.inputs for n in folded)


def _qdq_nodes(g: Graph, src: str, t: str, dst: str, quant: QuantParams, origin: Origin):
    q = g.fresh_name(f"{t}_q")
    g.types[q] = TensorType(DType.INT8, g.types[t].shape, quant)
    return [Node("QuantizeLinear", (src,), (q,), QuantizeAttrs(quant), f"{t}/quantize", origin),
            Node("DequantizeLinear", (q,), (dst,), QuantAttrs(quant), f"{t}/dequantize",
                 origin)]


def _insert(g: Graph, wanted, params) -> Graph:
    """A Q/DQ pair on each wanted tensor. A produced tensor keeps its name on the DQ output
    (the producer writes ``<t>_float``), so consumers and graph outputs need no edits; a
    graph input's consumers read ``<t>_dq`` instead."""
    wanted = set(wanted)
    nodes = []
    renamed = {}
    for t in g.inputs:
        if t in wanted:
            dst = g.fresh_name(f"{t}_dq")
            g.types[dst] = g.types[t]
            nodes += _qdq_nodes(g, t, t, dst, params[t], Origin(g.source, t, "input"))
            renamed[t] = dst
    for node in g.nodes:
        node = node.replace(inputs=tuple(renamed.get(i, i) for i in node.inputs))
        pairs = []
        outputs = list(node.outputs)
        for k, t in enumerate(outputs):
            if t in wanted:
                outputs[k] = g.fresh_name(f"{t}_float")
                g.types[outputs[k]] = g.types[t]
                pairs += _qdq_nodes(g, outputs[k], t, t, params[t], node.origin)
        nodes.append(node.replace(outputs=tuple(outputs)))
        nodes += pairs
    g.nodes = nodes
    return g
