"""Integer IR ops. Most are created by passes/fold_qdq.py from QDQ patterns; the QOperator
ONNX ops (QLinearConv, ...) lower straight to them. Quantization parameters live in the
tensor types (TensorType.quant); attrs hold only geometry and the fused clamp.

  QConv(x, w, b?)   int8 conv, w per-output-channel symmetric int8, b int32 (s_x * s_w[c])
  QGemm(x, w, b?)   fully connected, w stored (N, K)
  QLut(x)           any int8 -> int8 pointwise function as a 256-entry table
"""
from __future__ import annotations

import numpy as np

from ..registry import ir_op
from .conv import _conv_macs, check_conv, depthwise_inplace_scratch


def _fc_macs(graph, node):
    y = graph.types[node.outputs[0]].shape
    k = graph.types[node.inputs[1]].shape[1]
    return int(np.prod(y)) * int(k)


# QConvNHWC (passes/layout_nhwc.py, CMSIS-NN kernels) has no in-place variant.
ir_op("QConv", macs=_conv_macs, inplace_scratch=depthwise_inplace_scratch, check=check_conv)


ir_op("QGemm", macs=_fc_macs)


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
