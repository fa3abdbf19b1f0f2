"""The IR ops, one module per family: attribute records and facts (ir/registry.py). Importing
this package declares every op; ``op_info``/``op_macs``/``IR_OPS`` are re-exported here so that
what uses them gets the full table."""
from ..registry import IR_OPS, OpInfo, ir_op, op_info, op_macs  # noqa: F401
from . import (  # noqa: F401  (declare)
               attention,
               batchnorm,
               cast,
               conv,
               einsum,
               elementwise,
               fake_quant,
               gemm,
               generate,
               index,
               int8_arith_ops,
               int8_ops,
               layernorm,
               logic,
               loss,
               lowbit_ops,
               movement,
               normalization,
               pool,
               quantize_linear,
               recurrent,
               reduce,
               resize,
               sampling,
               shape_ops,
               softmax,
               spectral,
               tile_ops,
)
