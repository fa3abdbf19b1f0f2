"""edgecc's own Helium (MVE) int8 kernels for Cortex-M55 (issue 12): C generated per layer,
with the layer's shapes, offsets and requantization as compile-time constants, on the M-profile
Vector Extension through ``arm_mve.h`` where the compiler targets it (``__ARM_FEATURE_MVE``)
and as exact portable C elsewhere (the host build verify compares with). First in the
cortex-m55 chain; a layer outside a kernel's preconditions goes to the next backend
(``cortex_m``'s DSP kernels, then the CMSIS-NN calls). The preconditions and the constants
shared with the DSP kernels (``int8_layer``, ``requantization``) are cortex_m's."""
import functools
import os
import sys

from ..cortex_m import first_emit, first_scratch
from ..kernels import Backend, kernel
from . import add, conv, depthwise

KERNELS = (conv, depthwise, add)  # in the order they are asked


@kernel("QConvNHWC", "QAdd")
def generated(ctx, node):
    return first_emit(KERNELS, ctx, node)


BACKEND = Backend.collect("helium", os.path.join(os.path.dirname(__file__), "templates"),
                          [sys.modules[__name__]],
                          scratch=functools.partial(first_scratch, KERNELS))
