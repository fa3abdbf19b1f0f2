"""IR ops: sampling at computed coordinates: GridSample.

Attribute records and facts; the ONNX lowering is in compiler/lowering/sampling.py, the C
kernel in backends/generic/sampling.py."""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import ir_op


@dataclass(frozen=True)
class GridSampleAttrs:
    mode: str           # "nearest", "linear" or "cubic"
    padding_mode: str   # "zeros", "border" or "reflection"
    align_corners: bool


# No numpy reference: a GridSample on constants is folded by the loader with onnx's own.
ir_op("GridSample", elementwise=False)
