"""The lowering table: ONNX op -> lowering (IR op facts are in ir/registry.py). Importing
compiler.lowering fills it.

    @lowering("Relu")
    def lower_relu(ctx, node): ...
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple


@dataclass(frozen=True)
class Lowering:
    op_type: str
    fn: Callable
    # Input positions that must be compile-time constants (shapes, axes, pads, scales...).
    const_inputs: Tuple[int, ...] = ()


LOWERINGS: Dict[str, Lowering] = {}


def lowering(*op_types: str, const_inputs: Tuple[int, ...] = ()):
    def register(fn):
        for op in op_types:
            if op in LOWERINGS:
                raise RuntimeError(f"lowering for {op} registered twice")
            LOWERINGS[op] = Lowering(op, fn, const_inputs)
        return fn
    return register
