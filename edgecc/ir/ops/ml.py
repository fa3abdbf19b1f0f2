"""IR ops (attribute records and facts): classical ML ops of the ai.onnx.ml domain:
Binarizer, TreeEnsemble, LabelEncoder (ArrayFeatureExtractor lowers to Gather).

The ONNX lowerings are in compiler/lowering/ml.py, the C kernels in backends/generic/ml.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class BinarizerAttrs:
    threshold: float


def _binarizer_reference(node, xs):
    x = xs[0]
    return [(x.astype(np.float64) > node.attrs.threshold).astype(x.dtype)]


ir_op("Binarizer", reference=_binarizer_reference, elementwise=True)


@dataclass(frozen=True)
class TreeEnsembleAttrs:
    """Trees as flat tables. A child or root is a node index (>= 0) or a leaf l as -(l + 1).
    Splits and set members are doubles (the input is compared as a double, as onnx's
    reference does); a set-membership node's members are members[start:start + count]."""
    n_targets: int
    aggregate: int                    # 0 average, 1 sum, 2 min, 3 max
    roots: Tuple[int, ...]
    features: Tuple[int, ...]
    modes: Tuple[int, ...]            # 0 <=, 1 <, 2 >=, 3 >, 4 ==, 5 !=, 6 member
    splits: Tuple[float, ...]
    true_ids: Tuple[int, ...]
    false_ids: Tuple[int, ...]
    missing_true: Tuple[int, ...]     # a NaN feature takes the true branch
    member_start: Tuple[int, ...]
    member_count: Tuple[int, ...]
    members: Tuple[float, ...]
    leaf_targets: Tuple[int, ...]
    leaf_weights: Tuple[float, ...]


def _goes_true(a, k, x: float) -> bool:
    """Whether feature value x takes node k's true branch."""
    if x != x and a.missing_true[k]:
        return True
    m, v = a.modes[k], a.splits[k]
    if m == 6:
        s = a.member_start[k]
        return x in a.members[s:s + a.member_count[k]]
    return {0: x <= v, 1: x < v, 2: x >= v, 3: x > v, 4: x == v, 5: x != v}[m]


def tree_ensemble_reference(node, xs):
    a, x = node.attrs, xs[0]
    init = {2: np.finfo(x.dtype).max, 3: np.finfo(x.dtype).min}.get(a.aggregate, 0)
    y = np.full((x.shape[0], a.n_targets), init, dtype=x.dtype)
    for n in range(x.shape[0]):
        for root in a.roots:
            k = root
            while k >= 0:
                f = float(x[n, a.features[k]])
                k = a.true_ids[k] if _goes_true(a, k, f) else a.false_ids[k]
            w, t = a.leaf_weights[-k - 1], a.leaf_targets[-k - 1]
            if a.aggregate == 0:
                y[n, t] = float(y[n, t]) + w / len(a.roots)
            elif a.aggregate == 1:
                y[n, t] = float(y[n, t]) + w
            elif a.aggregate == 2:
                y[n, t] = min(float(y[n, t]), w)
            else:
                y[n, t] = max(float(y[n, t]), w)
    return [y]


ir_op("TreeEnsemble", reference=tree_ensemble_reference)


@dataclass(frozen=True)
class LabelEncoderAttrs:
    """keys -> values (numbers), default for a key not listed; keys are compared in the
    input's type, the first equal key wins."""
    keys: Tuple[float, ...]
    values: Tuple[float, ...]
    default: float


def _label_encoder_reference(node, xs):
    a, x = node.attrs, xs[0]
    table = {}
    for k, v in zip(a.keys, a.values):
        table.setdefault(k, v)
    return [np.vectorize(lambda v: table.get(v, a.default), otypes=[np.float64])(x)]


ir_op("LabelEncoder", reference=_label_encoder_reference)
