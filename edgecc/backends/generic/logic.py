"""Portable C kernels: Comparisons, logic, bitwise ops, Where, Mod and element tests (IsNaN, IsInf, Sign)."""
from __future__ import annotations
