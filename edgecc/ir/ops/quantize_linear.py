"""IR ops: QuantizeLinear and DequantizeLinear (the float <-> integer boundaries).

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/quantize_linear.py."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import QuantParams
from ..quant import quantize
from ..registry import ir_op


@dataclass(frozen=True)
class QuantAttrs:
    quant: QuantParams


def _broadcast(q: QuantParams, shape):
    """scale and zero point arrays shaped to broadcast against a tensor of ``shape``."""
    s = np.asarray(q.scale, dtype=np.float32)
    z = np.asarray(q.zero_point, dtype=np.int64)
    if q.axis is None:
        return s.reshape(()), z.reshape(())
    view = [1] * len(shape)
    view[q.axis] = -1
    return s.reshape(view), z.reshape(view)


def _ref_quantize(node, xs):
    q = node.attrs.quant
    s, z = _broadcast(q, xs[0].shape)
    dtype = {8: np.int8, 16: np.int16}.get(q.bits, np.int32)
    if min(q.zero_point) >= 0 and node.attrs.unsigned:
        dtype = {8: np.uint8, 16: np.uint16}.get(q.bits, np.uint32)
    return [quantize(xs[0], s, z, dtype)]


@dataclass(frozen=True)
class QuantizeAttrs(QuantAttrs):
    unsigned: bool = False


ir_op("QuantizeLinear", elementwise=False, reference=_ref_quantize, any_layout=True)


# No reference for DequantizeLinear: folding DQ(int8 weight) to float would lose the
# quantization that fold_qdq needs; fold_qdq removes what is left.
ir_op("DequantizeLinear", elementwise=False, any_layout=True)
