"""IR ops: data movement: Transpose, Concat, Split, Slice, Pad, Gather.

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/movement.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .. import DType
from ..registry import ir_op


@dataclass(frozen=True)
class TransposeAttrs:
    perm: Tuple[int, ...]


@dataclass(frozen=True)
class ConcatAttrs:
    axis: int  # in [0, rank)


@dataclass(frozen=True)
class SliceAttrs:
    """Output index i along axis k reads input index ``starts[k] + i * steps[k]``."""

    starts: Tuple[int, ...]
    steps: Tuple[int, ...]
    sizes: Tuple[int, ...]  # the output shape


@dataclass(frozen=True)
class PadAttrs:
    """``pads`` = (begin_0, ..., begin_n-1, end_0, ..., end_n-1) over every axis; a negative
    pad crops. ``mode`` is constant, edge, reflect or wrap; ``value`` fills in constant mode."""

    pads: Tuple[int, ...]
    mode: str = "constant"
    value: float = 0.0


@dataclass(frozen=True)
class GatherAttrs:
    axis: int  # in [0, rank of data)


def slice_reference(x: np.ndarray, a: SliceAttrs) -> np.ndarray:
    index = [s + t * np.arange(n) for s, t, n in zip(a.starts, a.steps, a.sizes)]
    return x[np.ix_(*index)]


def pad_reference(x: np.ndarray, a: PadAttrs) -> np.ndarray:
    rank = x.ndim
    begin, end = a.pads[:rank], a.pads[rank:]
    crop = tuple(slice(max(-b, 0), x.shape[k] - max(-e, 0)) for k, (b, e) in
                 enumerate(zip(begin, end)))
    width = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    if a.mode == "constant":
        return np.pad(x[crop], width, mode="constant",
                      constant_values=np.asarray(a.value).astype(x.dtype))
    return np.pad(x[crop], width, mode=a.mode)


ir_op("Transpose", reference=lambda n, xs: [np.transpose(xs[0], n.attrs.perm)], quant="shared")


ir_op("Concat", reference=lambda n, xs: [np.concatenate(xs, axis=n.attrs.axis)], quant="requantize")


ir_op("Slice", reference=lambda n, xs: [slice_reference(xs[0], n.attrs)], quant="shared")


ir_op("Pad", reference=lambda n, xs: [pad_reference(xs[0], n.attrs)], quant="shared")


ir_op("Gather", reference=lambda n, xs: [np.take(xs[0], xs[1], axis=n.attrs.axis)], quant="shared")


@dataclass(frozen=True)
class BitCastAttrs:
    to: DType  # same width as the input's type


ir_op("BitCast", reference=lambda n, xs: [np.ascontiguousarray(xs[0]).view(
    n.attrs.to.np_dtype).reshape(xs[0].shape)])
