"""Portable C kernels: Tensors made from shapes and values: Expand, Tile, ConstantOfShape, Range, EyeLike, Trilu, OneHot, CumSum and friends, DepthToSpace/SpaceToDepth."""
from __future__ import annotations
