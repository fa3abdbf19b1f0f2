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
from .conv import _conv_macs


def _fc_macs(graph, node):
    y = graph.types[node.outputs[0]].shape
    k = graph.types[node.inputs[1]].shape[1]
    return int(np.prod(y)) * int(k)


ir_op("QConv", macs=_conv_macs)
ir_op("QGemm", macs=_fc_macs)
ir_op("QLut", elementwise=True)
