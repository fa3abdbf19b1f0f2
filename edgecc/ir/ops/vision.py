"""IR ops (attribute records and facts): Detection and geometry ops: AffineGrid, RoiAlign, DeformConv, Det."""
from __future__ import annotations
