"""The portable C backend: every IR op has a kernel here; other backends override some."""
import os

from ..kernels import Backend
from . import (
               batchnorm,
               conv,
               elementwise,
               fake_quant,
               gemm,
               int8,
               int8_arith,
               layernorm,
               lowbit,
               movement,
               pool,
               quantize_linear,
               reduce,
               resize,
               softmax,
               tiles,
)

BACKEND = Backend.collect(
    "generic", os.path.join(os.path.dirname(__file__), "templates"),
    [batchnorm, conv, elementwise, fake_quant, gemm, int8, int8_arith, layernorm, lowbit,
     movement, pool, quantize_linear, reduce, resize, softmax, tiles])
