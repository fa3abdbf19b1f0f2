"""The op tables: ONNX op -> lowering, and IR op -> facts the passes and planner use.

Register in one place, next to the code:

    @lowering("Relu")
    def lower_relu(ctx, node): ...

    IR_OPS["Relu"] = OpInfo(elementwise=True, reference=np_relu)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ..ir import Graph, Node


@dataclass(frozen=True)
class Lowering:
    op_type: str
    fn: Callable
    # Input positions that must be compile-time constants (shapes, axes, pads, scales...).
    const_inputs: Tuple[int, ...] = ()


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


LOWERINGS: Dict[str, Lowering] = {}
IR_OPS: Dict[str, OpInfo] = {}


def lowering(*op_types: str, const_inputs: Tuple[int, ...] = ()):
    def register(fn):
        for op in op_types:
            if op in LOWERINGS:
                raise RuntimeError(f"lowering for {op} registered twice")
            LOWERINGS[op] = Lowering(op, fn, const_inputs)
        return fn
    return register


def ir_op(name: str, **info) -> None:
    IR_OPS[name] = OpInfo(**info)


def op_info(op: str) -> OpInfo:
    return IR_OPS.get(op, OpInfo())


def op_macs(graph: Graph, node: Node) -> int:
    fn = op_info(node.op).macs
    return int(fn(graph, node)) if fn else 0


def load_all() -> None:
    """Import every lowering module so their registrations run."""
    from . import lowering as _  # noqa: F401  (the package imports its modules)
