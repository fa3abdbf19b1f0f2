"""Portable C kernels: Attention (opset 23+) and RotaryEmbedding."""
from __future__ import annotations
