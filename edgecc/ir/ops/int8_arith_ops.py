"""Integer IR ops for int8 arithmetic beyond Conv/Gemm/LUT (see int8_ops.py for those).

Created by passes/fold_qdq_arith.py from QDQ patterns (and by the QOperator lowerings).
Quantization parameters live in the tensor types (TensorType.quant, per tensor); the kernels
are in backends/generic/int8_arith.py and the integer math in edgecc/ir/quant_ref.py.

  QAdd(a, b), QMul(a, b)  numpy broadcasting, TFLite arithmetic; attrs QBinaryAttrs
                          (optional fused Relu/Clip as an output clamp)
  QAveragePool(x)         attrs PoolAttrs (as AveragePool; GlobalAveragePool is a full kernel)
  QReduceMean(x)          attrs ReduceAttrs
  QSoftmax(x)             attrs SoftmaxAttrs (normalized over [axis, end_axis))
  QMatMul(a, b)           both operands int8 tensors (runtime or constant), per tensor;
                          attrs MatMulAttrs (optional fused Relu/Clip)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import Activation
from ..registry import ir_op
from .gemm import _matmul_macs


@dataclass(frozen=True)
class QBinaryAttrs:
    activation: Optional[Activation] = None


ir_op("QAdd", elementwise=True, any_layout=True)


ir_op("QMul", elementwise=True, any_layout=True)


ir_op("QAveragePool")


ir_op("QReduceMean")


ir_op("QSoftmax")


ir_op("QMatMul", macs=_matmul_macs)
