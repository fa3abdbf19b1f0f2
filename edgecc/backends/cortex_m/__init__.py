"""edgecc's own Cortex-M int8 kernels (issue 12): C generated per layer, with the layer's
shapes, offsets and requantization as compile-time constants, on the DSP extension's SIMD
instructions (SMLAD, SXTB16, SXTAB16, PKHBT/PKHTB, SMMULR, SSAT; arm_acle.h and inline
assembly) where the core has them and their exact portable equivalents elsewhere (the host
build verify compares with). A kernel takes a node only when its preconditions hold (see each
module); otherwise the next backend of the target's chain (the CMSIS-NN calls) runs it."""
import functools
import os
import sys

from ..kernels import Backend, kernel
from . import add, conv, depthwise, depthwise_inplace, fc, mean, quantize

KERNELS = (conv, depthwise, fc, add, mean, quantize)  # in the order they are asked


def first_emit(modules, ctx, node):
    """The kernel of the first of ``modules`` (each with ``plan``, ``emit`` and optionally
    ``scratch``) that takes the node, else None."""
    for module in modules:
        found = module.emit(ctx, node)
        if found is not None:
            return found
    return None


def first_scratch(modules, graph, node):
    """Arena scratch of the node when one of ``modules`` takes it (its ``scratch(plan)``, 0
    without one), else None."""
    for module in modules:
        facts = module.plan(graph, node)
        if facts is not None:
            return module.scratch(facts) if hasattr(module, "scratch") else 0
    return None


@kernel("QConvNHWC", "QGemm", "QAdd", "QReduceMean", "QuantizeLinear")
def generated(ctx, node):
    return first_emit(KERNELS, ctx, node)


BACKEND = Backend.collect("cortex_m", os.path.join(os.path.dirname(__file__), "templates"),
                          [sys.modules[__name__]],
                          scratch=functools.partial(first_scratch, KERNELS),
                          inplace=depthwise_inplace.inplace_scratch)
