"""ONNX lowerings: Index ops: ArgMax/ArgMin, TopK, Hardmax, GatherElements/GatherND, Scatter*."""
from __future__ import annotations
