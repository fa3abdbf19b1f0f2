"""IR ops: MaxPool and AveragePool (the Global forms too, with a full-size kernel).

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/pool.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from ..registry import ir_op


@dataclass(frozen=True)
class PoolAttrs:
    kernel: Tuple[int, ...]
    strides: Tuple[int, ...]
    pads: Tuple[int, ...]          # begin per spatial axis, then end per spatial axis
    dilations: Tuple[int, ...]
    count_include_pad: bool = False  # AveragePool only
    storage_order: int = 0           # MaxPool Indices: 0 row major, 1 column major


ir_op("MaxPool", elementwise=False, quant="shared")


ir_op("AveragePool", elementwise=False)
