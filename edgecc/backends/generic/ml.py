"""Portable C kernels: Binarizer, TreeEnsemble, LabelEncoder (ai.onnx.ml; see
compiler/lowering/ml.py and ir/ops/ml.py)."""
from __future__ import annotations

import numpy as np

from ..codegen import c_literal
from ..kernels import Kernel, kernel


@kernel("Binarizer")
def binarizer(ctx, node):
    """y = 1 if x > threshold else 0 (compared as doubles for integer x, as numpy does)."""
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    thr = node.attrs.threshold
    cond = (f"x[i] > {c_literal(thr, x.dtype)}" if x.dtype.is_float
            else f"(double)x[i] > {float(thr)!r}")
    return Kernel("ml_binarizer.c.j2", dict(x=x, y=y, n=x.numel, cond=cond),
                  [x.name, y.name])


@kernel("TreeEnsemble")
def tree_ensemble(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    i32 = lambda v: np.array(v or [0], dtype=np.int32)  # noqa: E731  (a C array is never empty)
    f64 = lambda v: np.array(v or [0.0], dtype=np.float64)  # noqa: E731
    tables = {
        "roots": i32(a.roots), "feature": i32(a.features), "mode": i32(a.modes),
        "split": f64(a.splits), "yes": i32(a.true_ids), "no": i32(a.false_ids),
        "missing": i32(a.missing_true), "mstart": i32(a.member_start),
        "mcount": i32(a.member_count), "members": f64(a.members),
        "target": i32(a.leaf_targets), "weight": f64(a.leaf_weights)}
    big = np.finfo(x.dtype.np_dtype).max
    init = c_literal({2: big, 3: -big}.get(a.aggregate, 0.0), x.dtype)
    return Kernel("ml_tree_ensemble.c.j2", dict(
        x=x, y=y, rows=x.shape[0], features=x.shape[1], targets=a.n_targets,
        trees=len(a.roots), aggregate=a.aggregate, init=init, members=bool(a.members)),
        [x.name, y.name], tables=tables)


@kernel("LabelEncoder")
def label_encoder(ctx, node):
    """Binary search of x among the sorted keys."""
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    first = {}
    for k, v in zip(a.keys, a.values):
        first.setdefault(k, v)
    keys = sorted(first)
    tables = {"keys": np.array(keys or [0], dtype=x.dtype.np_dtype),
              "values": np.array([first[k] for k in keys] or [0], dtype=y.dtype.np_dtype)}
    return Kernel("ml_label_encoder.c.j2", dict(
        x=x, y=y, n=x.numel, count=len(keys), default=c_literal(a.default, y.dtype)),
        [x.name, y.name], tables=tables)
