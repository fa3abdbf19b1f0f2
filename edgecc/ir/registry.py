"""IR op facts: what the passes, the memory planner and the backends know about each IR op.

Each op family's module in ir/ops/ declares its ops next to their attribute records:

    ir_op("Relu", elementwise=True)
    ir_op("Conv", macs=_conv_macs, inplace_scratch=depthwise_inplace_scratch)

Use ``edgecc.ir.ops.op_info`` (importing ir.ops declares every op). Declaring an op twice is
an error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from .graph import Graph, Node


@dataclass(frozen=True)
class OpInfo:
    """What the middle end knows about an IR op."""

    # numpy evaluation, for constant folding: (node, input arrays) -> output arrays
    reference: Optional[Callable[[Node, Sequence[np.ndarray]], Sequence[np.ndarray]]] = None
    # Output may share input 0's buffer (same shape and dtype, element i reads only input i).
    elementwise: bool = False
    # Output is the same bytes as input 0 (Reshape and friends): no code, no copy.
    alias: bool = False
    # Multiply-accumulates of one run of the node.
    macs: Optional[Callable[[Graph, Node], int]] = None
    # The node has an exact in-place variant writing its output over input 0 (once nothing
    # else needs input 0): the bytes of scratch that variant needs, or None when this node
    # cannot run in place (passes/memory_plan.py decides, the kernel follows the plan).
    inplace_scratch: Optional[Callable[[Graph, Node], Optional[int]]] = None
    # A unary pointwise op's float32 semantics, f(x, alpha, beta, approximate) on a numpy
    # array: the int8 path quantizes the op as a 256-entry table built with it.
    pointwise: Optional[Callable] = None
    # Fuses into Conv/ConvTranspose/Gemm/MatMul as their activation (passes/fuse_activation.py).
    activation: bool = False
    # Moves or selects values without arithmetic, so int8 runs it on the int8 tensor as is:
    # "shared" (the output keeps its input's scale and zero point) or "requantize" (the output
    # has its own, and each input is requantized to it: Concat). passes/quantize.py and
    # fold_qdq_rules.py read it.
    quant: Optional[str] = None
    # Computes the same whatever the layout of its (same-shaped) inputs: an NHWC producer's
    # output feeds it as is (passes/layout_nhwc.py).
    any_layout: bool = False
    # Checks a node against its input and output types (passes/validate.py): the broken rule
    # as a short sentence, or None. What it accepts, codegen may rely on.
    check: Optional[Callable[[Graph, Node], Optional[str]]] = None


IR_OPS: Dict[str, OpInfo] = {}


def ir_op(name: str, **info) -> None:
    if name in IR_OPS:
        raise RuntimeError(f"IR op {name} declared twice")
    IR_OPS[name] = OpInfo(**info)


def op_info(op: str) -> OpInfo:
    return IR_OPS.get(op, OpInfo())


def op_macs(graph: Graph, node: Node) -> int:
    fn = op_info(node.op).macs
    return int(fn(graph, node)) if fn else 0
