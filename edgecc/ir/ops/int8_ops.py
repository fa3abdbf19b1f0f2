"""Integer IR ops. Most are created by passes/fold_qdq.py from QDQ patterns; the QOperator
ONNX ops (QLinearConv, ...) lower straight to them. Quantization parameters live in the
tensor types (TensorType.quant); attrs hold only geometry and the fused clamp.

  QConv(x, w, b?)   int8 conv, w per-output-channel symmetric int8, b int32 (s_x * s_w[c])
  QGemm(x, w, b?)   fully connected, w stored (N, K)
  QLut(x)           any int8 -> int8 pointwise function as a 256-entry table
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..registry import ir_op
from .conv import _conv_macs, check_conv, depthwise_inplace_scratch


def _fc_macs(graph, node):
    y = graph.types[node.outputs[0]].shape
    k = graph.types[node.inputs[1]].shape[1]
    return int(np.prod(y)) * int(k)


INT32_MAX = (1 << 31) - 1


def _max_offset(t) -> int:
    """The largest |q - zero_point| an element of the quantized tensor type ``t`` can take."""
    lo, hi = t.dtype.int_range
    return max(max(abs(lo - z), abs(hi - z)) for z in (t.quant.zero_point if t.quant else (0,)))


def check_accumulator(graph, node) -> Optional[str]:
    """The kernels accumulate in int32 (C: overflow is undefined): for every output channel m,
    |b[m]| + max|x - zx| * sum_k |w[m, k] - zw[m]| <= 2^31 - 1, the worst case over all
    inputs (weights and bias are constants; real models stay far below)."""
    x_t, w_t = graph.types[node.inputs[0]], graph.types[node.inputs[1]]
    w = graph.constants.get(node.inputs[1])
    if w is None:
        return None
    zw = np.asarray(w_t.quant.zero_point if w_t.quant else (0,), np.int64)
    rows = w.reshape(w.shape[0], -1).astype(np.int64)
    rows = np.abs(rows - (zw.reshape(-1, 1) if zw.size == w.shape[0] else zw[0])).sum(axis=1)
    b = graph.constants.get(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    bias = np.abs(np.asarray(b, np.int64).reshape(-1)) if b is not None else 0
    worst = _max_offset(x_t) * rows + bias
    if worst.size and int(worst.max()) > INT32_MAX:
        m = int(np.argmax(worst))
        return (f"output channel {m} can overflow the int32 accumulator (|bias| + largest input "
                f"offset x sum |weights| = {int(worst[m])} > {INT32_MAX})")
    return None


def check_int8_io(graph, node) -> Optional[str]:
    """The int8 kernels read and write 8-bit tensors only."""
    for name in (node.inputs[0], node.inputs[1], node.outputs[0]):
        t = graph.types[name]
        if t.dtype.name not in ("INT8", "UINT8") or t.quant is None:
            return f"tensor '{name}' is {t.dtype.name.lower()}; int8 kernels need 8-bit tensors"
    return None


def check_qconv(graph, node) -> Optional[str]:
    return check_int8_io(graph, node) or check_conv(graph, node) or \
        check_accumulator(graph, node)


def check_qgemm(graph, node) -> Optional[str]:
    return check_int8_io(graph, node) or check_accumulator(graph, node)


# QConvNHWC (passes/layout_nhwc.py, CMSIS-NN kernels) has no in-place variant.
ir_op("QConv", macs=_conv_macs, inplace_scratch=depthwise_inplace_scratch, check=check_qconv)


ir_op("QGemm", macs=_fc_macs, check=check_qgemm)


ir_op("QLut", elementwise=True, any_layout=True)


def _nhwc_conv_macs(graph, node):
    """output elements x kh x kw x input channels per group (NHWC, weights OHWI or 1HWM)."""
    y = graph.types[node.outputs[0]].shape
    c_in = graph.types[node.inputs[0]].shape[3]
    kh, kw = node.attrs.kernel
    return int(np.prod(y)) * kh * kw * (c_in // node.attrs.group)


# Created by passes/layout_nhwc.py for the CMSIS-NN backend.
ir_op("QConvNHWC", macs=_nhwc_conv_macs)


ir_op("MaxPoolNHWC")


ir_op("QAveragePoolNHWC")
