"""Constant folding on the IR.

Before:  w2 = Transpose(w_const); y = MatMul(x, w2)
After:   y = MatMul(x, w2_const)            (w2_const = numpy transpose of w_const)

Precondition: the op has a numpy ``reference`` in the op table (compiler/registry.py).
Nodes whose inputs are all constants are evaluated with it; their outputs become constants.
A reference may decline a node by returning None (e.g. MatMul with a fused activation): the
node is kept.
Graph outputs are never folded away (the run function copies them from flash instead).
Most folding already happens in the front end, where onnx's reference evaluator runs ONNX
nodes with constant inputs (compiler/loader.py); this pass folds what later passes create.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from ..ir.ops import op_info


def fold_constants(graph: Graph) -> Graph:
    g = graph.copy()
    kept = []
    for node in g.nodes:
        ref = op_info(node.op).reference
        inputs = [i for i in node.inputs if i]
        if ref is None or not all(g.is_constant(i) for i in inputs):
            kept.append(node)
            continue
        values = ref(node, [g.constants[i] for i in inputs])
        if values is None:
            kept.append(node)
            continue
        for out, value in zip(node.outputs, values):
            if out:
                t = g.types[out]
                g.constants[out] = np.ascontiguousarray(
                    np.asarray(value, dtype=t.dtype.np_dtype)).reshape(t.shape)
    g.nodes = kept
    g.remove_unused()
    return g
