"""IR ops (attribute records and facts): Ops of recent decoder models: LinearAttention, CausalConvWithState, TensorScatter, SwiGLU, FlexAttention."""
from __future__ import annotations
