"""IR ops: view changes: Reshape, Flatten, Squeeze, Unsqueeze (aliases, no code).

Their attribute records and facts (numpy reference for constant folding, MACs, in-place
and alias behaviour); the ONNX lowerings are in compiler/lowering/shape_ops.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class ReshapeAttrs:
    """The output shape (static; every -1 and 0 of the ONNX shape input resolved)."""

    shape: Tuple[int, ...]


ir_op("Reshape", alias=True,
      reference=lambda n, xs: [np.reshape(xs[0], n.attrs.shape)], quant="shared")
