"""If, Loop and Scan: the loader unrolls them into their bodies' nodes
(compiler/control_flow.py); a node that reaches lowering could not be unrolled, and this says
why in one line."""
from __future__ import annotations

from ..registry import lowering


@lowering("If")
def lower_if(ctx, node):
    raise ctx.error("If whose branches give outputs of different or unknown shapes, chosen by "
                    "a condition known only at run time: the output shape depends on the data")


@lowering("Loop", const_inputs=(0, 1))
def lower_loop(ctx, node):
    raise ctx.error("Loop is unrolled only with a constant trip count and a condition the body "
                    "passes through unchanged (or constant true), and scan outputs need at "
                    "least one iteration")


@lowering("Scan")
def lower_scan(ctx, node):
    raise ctx.error("Scan is unrolled only from opset 9 (no batch axis) and with scan inputs "
                    "of one static length")
