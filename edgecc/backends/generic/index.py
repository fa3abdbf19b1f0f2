"""Portable C kernels: Index ops: ArgMax/ArgMin, TopK, Hardmax, GatherElements/GatherND, Scatter*."""
from __future__ import annotations
