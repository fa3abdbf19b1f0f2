"""ONNX lowerings: Detection and geometry ops: AffineGrid, RoiAlign, DeformConv, Det."""
from __future__ import annotations
