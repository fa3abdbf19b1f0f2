"""The portable C backend: every IR op has a kernel here; other backends override some."""
import os

from ..kernels import Backend
from . import (
               attention,
               batchnorm,
               cast,
               conv,
               decoder,
               einsum,
               elementwise,
               fake_quant,
               gemm,
               generate,
               index,
               int8,
               int8_arith,
               layernorm,
               logic,
               loss,
               lowbit,
               ml,
               movement,
               normalization,
               pool,
               quantize_linear,
               recurrent,
               reduce,
               resize,
               sampling,
               softmax,
               spectral,
               tiles,
               vision,
)

BACKEND = Backend.collect(
    "generic", os.path.join(os.path.dirname(__file__), "templates"),
    [attention, batchnorm, cast, conv, decoder, einsum, elementwise, fake_quant, gemm,
     generate, index, int8, int8_arith, layernorm, logic, loss, lowbit, ml, movement,
     normalization, pool, quantize_linear, recurrent, reduce, resize, sampling, softmax,
     spectral, tiles, vision])
