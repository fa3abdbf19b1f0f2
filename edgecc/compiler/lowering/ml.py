"""ONNX lowerings: classical ML ops of the ai.onnx.ml domain: Binarizer, ArrayFeatureExtractor,
TreeEnsemble (ai.onnx.ml opset 5), LabelEncoder (numeric keys and values only).

They register under their domain-qualified names (``ai.onnx.ml.Binarizer``, see
``lowering_key`` in compiler/frontend.py). ArrayFeatureExtractor is a Gather along the last
axis (a 1-D input gives one row, as onnxruntime and onnx's reference do); the others have
kernels of their own (backends/generic/ml.py)."""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from ...ir import DType, TensorType
from ...ir.ops.ml import BinarizerAttrs, LabelEncoderAttrs, TreeEnsembleAttrs
from ...ir.ops.movement import GatherAttrs
from ..registry import lowering
from .shape_ops import emit_reshape

ML = "ai.onnx.ml."


def _array(value):
    """An attribute value (list or TensorProto) as a numpy array, or None."""
    if value is None:
        return None
    if hasattr(value, "dims"):
        return numpy_helper.to_array(value)
    return np.asarray(value)


@lowering(ML + "Binarizer")
def lower_binarizer(ctx, node):
    x_t = ctx.type(node.input[0])
    if x_t.dtype not in (DType.FLOAT32, DType.FLOAT64, DType.INT32, DType.INT64):
        raise ctx.error(f"Binarizer on {x_t.dtype.name.lower()} is not supported")
    ctx.emit("Binarizer", [node.input[0]], [node.output[0]],
             BinarizerAttrs(float(ctx.attr("threshold", 0.0))), types=[x_t])


@lowering(ML + "ArrayFeatureExtractor")
def lower_array_feature_extractor(ctx, node):
    x_t, i_t = ctx.type(node.input[0]), ctx.type(node.input[1])
    if i_t.dtype not in (DType.INT64, DType.INT32):
        raise ctx.error(f"ArrayFeatureExtractor indices must be int64, not {i_t.dtype.name}")
    if x_t.rank < 1:
        raise ctx.error("ArrayFeatureExtractor of a scalar")
    k = i_t.numel
    dim = x_t.shape[-1]
    const = ctx.const(node.input[1])
    if const is not None and const.size and (const.min() < -dim or const.max() >= dim):
        raise ctx.error(f"ArrayFeatureExtractor indices out of range for a last axis of {dim}")
    indices = node.input[1]
    if i_t.rank != 1:
        indices = ctx.graph.fresh_name(f"{node.input[1]}_flat")
        emit_reshape(ctx, node.input[1], indices, (k,))
    out_shape = (1, k) if x_t.rank == 1 else tuple(x_t.shape[:-1]) + (k,)
    gathered = ctx.temp(f"{node.output[0]}_gather", x_t.with_shape(tuple(x_t.shape[:-1]) + (k,)))
    ctx.emit("Gather", [node.input[0], indices], [gathered], GatherAttrs(x_t.rank - 1))
    emit_reshape(ctx, gathered, node.output[0], out_shape)


def _walk_trees(ctx, roots, true_ids, false_ids, n_nodes):
    """Check that every node reached from the roots is in range and no path loops."""
    state = [0] * n_nodes  # 0 unseen, 1 on the current path, 2 done
    for root in roots:
        if root < 0:
            continue
        stack = [(root, 0)]
        while stack:
            k, step = stack.pop()
            if step == 0:
                if state[k] == 1:
                    raise ctx.error("TreeEnsemble trees must not contain cycles")
                if state[k] == 2:
                    continue
                state[k] = 1
                stack.append((k, 1))
                for child in (true_ids[k], false_ids[k]):
                    if child >= 0:
                        if child >= n_nodes:
                            raise ctx.error(f"TreeEnsemble node id {child} is out of range")
                        stack.append((child, 0))
            else:
                state[k] = 2


@lowering(ML + "TreeEnsemble")
def lower_tree_ensemble(ctx, node):
    x_t = ctx.type(node.input[0])
    if x_t.dtype not in (DType.FLOAT32, DType.FLOAT64) or x_t.rank != 2:
        raise ctx.error(f"TreeEnsemble input must be a 2-D float tensor, not {x_t}")
    post = int(ctx.attr("post_transform", 0))
    if post != 0:
        raise ctx.error(f"TreeEnsemble post_transform {post} is not supported")
    aggregate = int(ctx.attr("aggregate_function", 1))
    if aggregate not in (0, 1, 2, 3):
        raise ctx.error(f"TreeEnsemble aggregate_function {aggregate} is not supported")
    n_targets = int(ctx.attr("n_targets", 0))
    features = [int(v) for v in ctx.attr("nodes_featureids", [])]
    n = len(features)
    modes = [int(v) for v in _array(ctx.attr("nodes_modes")).reshape(-1)]
    splits = [float(v) for v in _array(ctx.attr("nodes_splits")).reshape(-1)]
    t_ids = [int(v) for v in ctx.attr("nodes_truenodeids", [])]
    f_ids = [int(v) for v in ctx.attr("nodes_falsenodeids", [])]
    t_leaf = [int(v) for v in ctx.attr("nodes_trueleafs", [])]
    f_leaf = [int(v) for v in ctx.attr("nodes_falseleafs", [])]
    missing = [int(v) for v in ctx.attr("nodes_missing_value_tracks_true", [0] * n)]
    targets = [int(v) for v in ctx.attr("leaf_targetids", [])]
    weights = [float(v) for v in _array(ctx.attr("leaf_weights")).reshape(-1)]
    roots = [int(v) for v in ctx.attr("tree_roots", [])]
    members = _array(ctx.attr("membership_values"))
    if any(len(a) != n for a in (modes, splits, t_ids, f_ids, t_leaf, f_leaf, missing)):
        raise ctx.error("TreeEnsemble nodes_* attributes differ in length")
    if len(targets) != len(weights) or not roots:
        raise ctx.error("TreeEnsemble needs tree_roots and leaves of equal lengths")
    if any(not 0 <= f < x_t.shape[1] for f in features):
        raise ctx.error(f"TreeEnsemble feature id out of range for {x_t.shape[1]} features")
    if any(not 0 <= t < n_targets for t in targets) or any(m not in range(7) for m in modes):
        raise ctx.error("TreeEnsemble leaf target id or node mode out of range")
    if any(not 0 <= r < n for r in roots):
        raise ctx.error("TreeEnsemble tree root out of range")

    def child(k, leaf):
        if leaf:
            if not 0 <= k < len(targets):
                raise ctx.error(f"TreeEnsemble leaf id {k} is out of range")
            return -k - 1
        return k

    trues = [child(k, leaf) for k, leaf in zip(t_ids, t_leaf)]
    falses = [child(k, leaf) for k, leaf in zip(f_ids, f_leaf)]
    enc_roots = [trues[r] if t_leaf[r] and f_leaf[r] and t_ids[r] == f_ids[r] else r
                 for r in roots]
    _walk_trees(ctx, enc_roots, trues, falses, n)
    # the members of each set-membership node, in node order, delimited by NaN
    values = [] if members is None else [float(v) for v in members.reshape(-1)]
    starts, counts, flat, pos = [0] * n, [0] * n, [], 0
    for k in range(n):
        if modes[k] != 6:
            continue
        starts[k] = len(flat)
        while pos < len(values) and values[pos] == values[pos]:
            flat.append(values[pos])
            pos += 1
        if pos >= len(values):
            raise ctx.error("TreeEnsemble membership_values lack a set for a member node")
        pos += 1
        counts[k] = len(flat) - starts[k]
    attrs = TreeEnsembleAttrs(
        n_targets, aggregate, tuple(enc_roots), tuple(features), tuple(modes), tuple(splits),
        tuple(trues), tuple(falses), tuple(missing), tuple(starts), tuple(counts), tuple(flat),
        tuple(targets), tuple(weights))
    ctx.emit("TreeEnsemble", [node.input[0]], [node.output[0]], attrs,
             types=[TensorType(x_t.dtype, (x_t.shape[0], n_targets))])


def _numeric(ctx, kind: str):
    """LabelEncoder keys_* or values_* as (numpy array, is_float), or None when absent."""
    for name, is_float in ((f"{kind}_floats", True), (f"{kind}_int64s", False)):
        value = ctx.attr(name)
        if value is not None:
            return np.asarray(value, np.float64 if is_float else np.int64), is_float
    if ctx.attr(f"{kind}_strings") is not None:
        raise ctx.error("LabelEncoder with string keys or values is not supported")
    tensor = _array(ctx.attr(f"{kind}_tensor"))
    if tensor is None:
        raise ctx.error(f"LabelEncoder needs {kind}")
    if tensor.dtype.kind not in "iuf":
        raise ctx.error("LabelEncoder with string keys or values is not supported")
    return tensor.reshape(-1), tensor.dtype.kind == "f"


@lowering(ML + "LabelEncoder")
def lower_label_encoder(ctx, node):
    x_t = ctx.type(node.input[0])
    if not (x_t.dtype.is_float or x_t.dtype in (DType.INT64, DType.INT32, DType.INT16)):
        raise ctx.error(f"LabelEncoder on {x_t.dtype.name.lower()} is not supported")
    keys, _ = _numeric(ctx, "keys")
    values, v_float = _numeric(ctx, "values")
    if len(keys) != len(values):
        raise ctx.error("LabelEncoder keys and values differ in length")
    tensor = _array(ctx.attr("default_tensor"))
    if tensor is not None:
        default = tensor.reshape(-1)[0].item()
    elif v_float:
        default = float(ctx.attr("default_float", -0.0))
    else:
        default = int(ctx.attr("default_int64", -1))
    np_x = x_t.dtype.np_dtype
    pairs = []
    with np.errstate(all="ignore"):
        for k, v in zip(keys.tolist(), values.tolist()):
            kx = np.asarray(k).astype(np_x)
            if kx == kx and float(kx) == float(k):  # NaN and keys x cannot hold never match
                pairs.append((kx.item(), v))
    attrs = LabelEncoderAttrs(tuple(k for k, _ in pairs), tuple(v for _, v in pairs), default)
    ctx.emit("LabelEncoder", [node.input[0]], [node.output[0]], attrs)
