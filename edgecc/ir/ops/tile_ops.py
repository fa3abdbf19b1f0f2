"""IR ops of patch-based execution (passes/patch_plan.py). Never produced from ONNX.

  TileCopy(x) -> y          y = the window of x starting at attrs.begin (H, W) with y's shape
                            (N and C whole; NCHW). Crops a tile out of a full tensor or out
                            of a larger tile (a halo the consumer does not need).
  TilePaste(acc, t) -> y    y = acc with the window at attrs.begin overwritten by t. acc may be
                            "" (the first tile: the rest of y is written by later pastes). y may
                            share acc's buffer (the planner's in-place rule); the kernel copies
                            acc first when it does not.
  TileCopyNHWC, TilePasteNHWC: the same on NHWC tensors (begin is still (H, W)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from ..registry import ir_op


@dataclass(frozen=True)
class TileAttrs:
    begin: Tuple[int, int]  # (row, column) of the window's top-left corner in the larger tensor


ir_op("TileCopy")


ir_op("TilePaste", elementwise=True)


# the same on NHWC tensors (passes/layout_nhwc.py, Cortex-M): windows of H x W, C whole
ir_op("TileCopyNHWC")


ir_op("TilePasteNHWC", elementwise=True)
