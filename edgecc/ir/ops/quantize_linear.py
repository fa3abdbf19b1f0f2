"""IR ops: QuantizeLinear and DequantizeLinear (the float <-> integer boundaries).

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/quantize_linear.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

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


def check_quant(graph, node) -> Optional[str]:
    """Scales finite and > 0 (DequantizeLinear: >= 0, a pruned channel dequantizes to 0);
    zero points inside the integer type; per-axis parameters as long as their axis."""
    q = node.attrs.quant
    low = 0.0 if node.op == "DequantizeLinear" else np.nextafter(0.0, 1.0)
    bad = [float(v) for v in q.scale if not (np.isfinite(v) and v >= low)]
    if bad:
        return f"quantization scale {bad[0]:g} must be finite and {'>=' if low == 0 else '>'} 0"
    t = graph.types[node.outputs[0] if node.op == "QuantizeLinear" else node.inputs[0]]
    if not t.dtype.is_float:
        lo, hi = t.dtype.int_range
        if any(z < lo or z > hi for z in q.zero_point):
            return (f"zero point {next(z for z in q.zero_point if z < lo or z > hi)} is outside "
                    f"{t.dtype.name.lower()} [{lo}, {hi}]")
    if q.axis is not None and (not 0 <= q.axis < t.rank or len(q.scale) != t.shape[q.axis]):
        return (f"{len(q.scale)} per-axis scales for axis {q.axis} of a "
                f"{list(t.shape)} tensor")
    return None


ir_op("QuantizeLinear", elementwise=False, reference=_ref_quantize, any_layout=True,
      check=check_quant)


# No reference for DequantizeLinear: folding DQ(int8 weight) to float would lose the
# quantization that fold_qdq needs; fold_qdq removes what is left.
ir_op("DequantizeLinear", elementwise=False, any_layout=True, check=check_quant)
