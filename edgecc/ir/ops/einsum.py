"""IR op: Einsum, with its equation resolved into label numbers (compiler/lowering/einsum.py).

Every distinct label (letters, and one per broadcast axis of the ellipsis) has a number and
a size. The op is then

    y[out labels] = sum over the other labels of  prod_k  x_k[labels of x_k]

where an input axis of size 1 under a label of larger size broadcasts (ellipsis axes only) and
a label repeated in one input reads its diagonal. Their attribute record and facts live here;
the ONNX lowering is in compiler/lowering/einsum.py.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class EinsumAttrs:
    inputs: Tuple[Tuple[int, ...], ...]   # label number of each axis, per input
    output: Tuple[int, ...]               # label number of each output axis (distinct)
    sizes: Tuple[int, ...]                # size of each label


def _reference(node, xs):
    a = node.attrs
    letters = string.ascii_letters
    if len(a.sizes) > len(letters):
        return None
    ops = []
    for x, labels in zip(xs, a.inputs):
        # broadcast size-1 axes to their label's size (numpy's einsum only broadcasts "...")
        ops.append(np.broadcast_to(x, [a.sizes[k] if d == 1 else d
                                       for k, d in zip(labels, x.shape)]))
    terms = ["".join(letters[k] for k in labels) for labels in a.inputs]
    eq = ",".join(terms) + "->" + "".join(letters[k] for k in a.output)
    return [np.asarray(np.einsum(eq, *ops)).astype(xs[0].dtype)]


def _macs(graph, node) -> int:
    return int(np.prod(node.attrs.sizes, dtype=np.int64)) * max(1, len(node.attrs.inputs) - 1)


ir_op("Einsum", elementwise=False, reference=_reference, macs=_macs)
