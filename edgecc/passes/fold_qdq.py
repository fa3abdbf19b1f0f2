"""Fold DequantizeLinear -> float op -> QuantizeLinear into one integer op.

Before:  xf = DQ(x_q); wf = DQ(w_q); bf = DQ(b_q); yf = Conv(xf, wf, bf); y_q = Q(yf)
After:   y_q = QConv(x_q, w_q, b_q)           (scales and zero points live in the tensor types)

Preconditions: every runtime input of the op comes from a DequantizeLinear; its weights are
constants behind a DequantizeLinear (or float constants the rule quantizes); its output feeds
only QuantizeLinear nodes with the same parameters and is not a graph output; the op has a rule
in RULE_ORDER whose own conditions hold (e.g. a Conv's fused activation is Relu or Clip).
Anything else stays float between explicit Q/DQ nodes (``edgecc analyze`` shows which).

Math (QUANT.md): the integer op computes the same affine map with int32 accumulation and
fixed-point requantization; onnxruntime does the requantization in float, hence <= 1 LSB
differences per layer. Afterwards Q(DQ(x)) with equal parameters collapses to x, and with
different parameters becomes a QLut requantization (a 256-entry table).
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Set

from ..ir import Graph, Node
from . import fold_qdq_arith as arith
from . import fold_qdq_rules as rules
from .cleanup import eliminate_dead_code, rename_tensor
from .fold_qdq_base import LutAttrs, QIn, is_int8, per_tensor, requant_node  # noqa: F401  (LutAttrs: API)
from .rewrite import Rule, View, rewrite

# The rules in the order they are tried: for each float op, the first rule that returns
# nodes wins (e.g. MatMul: QGemm for a constant 2-D weight, else QMatMul; Relu/Clip: fused
# into the Add/Mul before it, else a table).
RULE_ORDER = (
    rules.fold_conv, rules.fold_gemm, rules.fold_matmul, arith.fold_qmatmul,
    arith.fold_add_mul, arith.fold_clamp, rules.fold_lut, arith.fold_average_pool,
    arith.fold_reduce_mean, arith.fold_softmax, rules.fold_pass_through,
)


def rule_table(order) -> Dict[str, Callable]:
    """Float op -> one callable trying that op's rules in ``order`` (what passes/quantize.py
    probes); a rule listed twice is an error."""
    if len(set(order)) != len(order):
        raise ValueError("a fold rule is listed twice")
    by_op: Dict[str, List[Callable]] = {}
    for fn in order:
        for op in fn.fold_ops:
            by_op.setdefault(op, []).append(fn)

    def first_of(fns):
        if len(fns) == 1:
            return fns[0]

        def rule(g, node, ins, q_out):
            for fn in fns:
                nodes = fn(g, node, ins, q_out)
                if nodes is not None:
                    return nodes
            return None
        return rule
    return {op: first_of(fns) for op, fns in by_op.items()}


FOLD_RULES: Dict[str, Callable] = rule_table(RULE_ORDER)


def _inputs(g: Graph, node: Node, view: View) -> List[Optional[QIn]]:
    ins: List[Optional[QIn]] = []
    for i in node.inputs:
        p = view.producers.get(i) if i else None
        if not i:
            ins.append(None)
        elif p is not None and p.op == "DequantizeLinear":
            ins.append(QIn(p.inputs[0], p.attrs.quant, g.is_constant(p.inputs[0])))
        elif g.is_constant(i):
            ins.append(QIn(i, None, True))
        else:
            ins.append(QIn(i, None, False))  # a float runtime tensor: rules refuse
    return ins


def as_rewrite_rule(fold: Callable, keep_float: Set[str]) -> Rule:
    """A fold rule as a rewrite rule: the node's output must feed only QuantizeLinear nodes
    with equal parameters (not a graph output); they fold away with it."""
    def apply(g: Graph, node: Node, view: View) -> bool:
        if node.name in keep_float or len([o for o in node.outputs if o]) != 1:
            return False
        out = node.outputs[0]
        users = view.consumers.get(out, [])
        if (out in g.outputs or not users or any(u.op != "QuantizeLinear" for u in users)
                or any(u.attrs.quant != users[0].attrs.quant for u in users)
                or any(not is_int8(g, u.outputs[0]) for u in users)):  # int8 kernels only
            return False
        q_out = users[0].outputs[0]
        new_nodes = fold(g, node, _inputs(g, node, view), q_out)
        if new_nodes is None:
            return False
        for extra in users[1:]:
            g.nodes.remove(extra)
            rename_tensor(g, extra.outputs[0], q_out)
        g.nodes.remove(users[0])
        at = g.nodes.index(node)
        g.nodes[at:at + 1] = new_nodes
        return True
    return Rule(fold.__name__, fold.fold_ops, apply)


def fold_qdq(graph: Graph, keep_float: Iterable[str] = ()) -> Graph:
    """keep_float: names of nodes that stay float (``--quantize-exclude``)."""
    if not any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in graph.nodes):
        return graph.copy()
    keep = set(keep_float)
    g = rewrite(graph, [as_rewrite_rule(fn, keep) for fn in RULE_ORDER])
    g = _collapse_requantize(g)
    return eliminate_dead_code(g)  # the DQ/Q nodes folded away


def _collapse_requantize(g: Graph) -> Graph:
    """Q(DQ(x)): the same parameters -> x; other parameters -> QLut requantization."""
    g = g.copy()
    producers = g.producers()
    for q in [n for n in g.nodes if n.op == "QuantizeLinear"]:
        dq = producers.get(q.inputs[0])
        if dq is None or dq.op != "DequantizeLinear":
            continue
        src = dq.inputs[0]
        if g.is_constant(src) or g.types[src].dtype != g.types[q.outputs[0]].dtype:
            continue
        if dq.attrs.quant == q.attrs.quant and q.outputs[0] not in g.outputs:
            g.nodes.remove(q)
            g.nodes = [n.replace(inputs=tuple(src if i == q.outputs[0] else i for i in n.inputs))
                       for n in g.nodes]
        elif per_tensor(dq.attrs.quant) and per_tensor(q.attrs.quant) and is_int8(g, src):
            at = g.nodes.index(q)
            g.nodes[at] = requant_node(g, src, q.attrs.quant, q, dst=q.outputs[0])
    return g
