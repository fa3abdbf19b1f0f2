"""edgecc's NEON kernels (issue 14) for the aarch64-neon targets: C generated per layer on
``arm_neon.h`` intrinsics, with shapes, strides, padding and requantization as compile-time
constants and weights packed at compile time in the order the kernels read them. The same C
serves armv8-a (SMULL/SMLAL2/SADALP) and armv8.2-a+dotprod (SDOT), chosen by the preprocessor
(``__ARM_FEATURE_DOTPROD``). Bit-plane convolutions (QConvBits, ``lowbit_conv``): AND/XOR +
CNT over packed pixel streams, the same code on both.

A kernel takes a node only when its preconditions hold (see each module); the others run the
portable kernels (``generic``, next in the chain). The layout pass (``layout.py``) puts into
NHWC only the layers these kernels take. A model using any of them stops with ``#error`` when
built for a CPU without NEON (``neon_common.c.j2``)."""
import os

from ..kernels import Backend
from . import (float_conv, float_fc, int8_conv, int8_depthwise, int8_eltwise, int8_fc, int8_mean,
               lowbit_conv)

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
MODULES = (float_conv, float_fc, int8_conv, int8_depthwise, int8_eltwise, int8_fc,
           int8_mean, lowbit_conv)  # asked in order

BACKEND = Backend.collect("neon", TEMPLATES, MODULES)
