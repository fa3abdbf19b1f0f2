"""ONNX -> IR lowerings, one module per op family; importing the package registers every
lowering in compiler/registry.py's table (the modules are listed, not scanned)."""
from . import (  # noqa: F401
               batchnorm,
               conv,
               elementwise,
               gemm,
               layernorm,
               movement,
               pool,
               qlinear,
               qonnx,
               quantize_linear,
               reduce,
               resize,
               shape_ops,
               softmax,
)
