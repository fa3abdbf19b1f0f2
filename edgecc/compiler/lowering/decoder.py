"""ONNX lowerings: Ops of recent decoder models: LinearAttention, CausalConvWithState, TensorScatter, SwiGLU, FlexAttention."""
from __future__ import annotations
