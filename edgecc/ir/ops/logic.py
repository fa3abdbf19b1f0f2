"""IR ops (attribute records and facts): Comparisons, logic, bitwise ops, Where, Mod and element tests (IsNaN, IsInf, Sign)."""
from __future__ import annotations
