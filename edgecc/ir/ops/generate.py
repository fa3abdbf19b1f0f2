"""IR ops (attribute records and facts): Tensors made from shapes and values: Expand, Tile, ConstantOfShape, Range, EyeLike, Trilu, OneHot, CumSum and friends, DepthToSpace/SpaceToDepth."""
from __future__ import annotations
