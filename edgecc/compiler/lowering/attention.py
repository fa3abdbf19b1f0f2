"""ONNX lowerings: Attention (opset 23+) and RotaryEmbedding."""
from __future__ import annotations
