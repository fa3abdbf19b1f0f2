"""IR ops (attribute records and facts): ops of recent decoder models: LinearAttention,
CausalConvWithState, TensorScatter, SwiGLU, FlexAttention.

SwiGLU and FlexAttention lower to existing IR ops (compiler/lowering/decoder.py); the three
ops here carry a recurrent state or a cache:

- ``LinearAttention`` (inputs q, k, v, past_state or "", decay or "", beta or ""; outputs y,
  state): per time step the state S [d_k, d_v] of each key/value head decays by exp(decay),
  takes the delta correction v <- beta (v - S^T k), adds k (x) v, and each query head reads
  scale * q^T S (query head h reads key/value head h / group).
- ``CausalConvWithState`` (inputs x, weight, bias or "", past_state or ""; outputs y,
  present_state or ""): a depthwise 1-D convolution over [past_state or zeros, x] without
  padding, optionally followed by SiLU; present_state is the last k - 1 padded positions.
- ``TensorScatter`` (inputs past_cache, update, write_indices or ""): the cache with the
  update's rows written along ``axis`` from write_indices[batch] on (modulo the cache length
  when circular; rows outside the cache are not written).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class LinearAttentionAttrs:
    q_heads: int
    kv_heads: int
    scale: float
    gated: bool = False          # decay input given: state *= exp(decay) each step
    delta: bool = False          # beta input given: delta-rule correction of v
    decay_per_key: bool = False  # decay is [B, T, kv_heads * d_k] (else [B, T, kv_heads])


def _split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """[B, T, heads * D] -> [B, heads, T, D]."""
    b, t, hd = x.shape
    return x.reshape(b, t, heads, hd // heads).transpose(0, 2, 1, 3)


def _linear_attention(node, xs):
    a = node.attrs
    names = list(node.inputs) + [""] * (6 - len(node.inputs))
    given = iter(xs)
    q, k, v = next(given), next(given), next(given)
    past, decay, beta = (next(given) if names[i] else None for i in (3, 4, 5))
    dt = q.dtype
    b, t, _ = q.shape
    dk, dv = k.shape[2] // a.kv_heads, v.shape[2] // a.kv_heads
    q4, k4, v4 = _split_heads(q, a.q_heads), _split_heads(k, a.kv_heads), \
        _split_heads(v, a.kv_heads)
    state = (past.astype(dt).copy() if past is not None
             else np.zeros((b, a.kv_heads, dk, dv), dtype=dt))
    if decay is not None:
        decay4 = _split_heads(decay, a.kv_heads) if a.decay_per_key else \
            decay.reshape(b, t, a.kv_heads, 1).transpose(0, 2, 1, 3)
    if beta is not None:
        beta4 = beta.reshape(b, t, beta.shape[2], 1).transpose(0, 2, 1, 3)
    out = np.zeros((b, a.q_heads, t, dv), dtype=dt)
    group = a.q_heads // a.kv_heads
    with np.errstate(all="ignore"):
        for i in range(t):
            kt, vt = k4[:, :, i, :], v4[:, :, i, :]
            if decay is not None:
                state = state * np.exp(decay4[:, :, i, :])[..., None]
            if beta is not None:
                vt = beta4[:, :, i, :] * (vt - np.einsum("bhdm,bhd->bhm", state, kt))
            state = state + kt[..., :, None] * vt[..., None, :]
            read = np.repeat(state, group, axis=1)
            out[:, :, i, :] = dt.type(a.scale) * np.einsum("bhd,bhdm->bhm", q4[:, :, i, :], read)
    y = out.transpose(0, 2, 1, 3).reshape(b, t, a.q_heads * dv)
    return [y.astype(dt), state.astype(dt)]


ir_op("LinearAttention", reference=_linear_attention)


@dataclass(frozen=True)
class CausalConvAttrs:
    silu: bool = False           # y = conv * sigmoid(conv)


def _causal_conv(node, xs):
    names = list(node.inputs) + [""] * (4 - len(node.inputs))
    given = iter(xs)
    x, w = next(given), next(given)
    bias, past = (next(given) if names[i] else None for i in (2, 3))
    b, c, _ = x.shape
    k = w.shape[2]
    pad = past if past is not None else np.zeros((b, c, k - 1), dtype=x.dtype)
    padded = np.concatenate([pad.astype(x.dtype), x], axis=2)
    length = x.shape[2]
    y = np.zeros_like(x)
    for j in range(k):
        y += w[None, :, 0, j, None] * padded[:, :, j:j + length]
    if bias is not None:
        y += bias[None, :, None]
    if node.attrs.silu:
        with np.errstate(all="ignore"):
            y = y / (1 + np.exp(-y))
    return [y.astype(x.dtype), padded[:, :, padded.shape[2] - (k - 1):]]


ir_op("CausalConvWithState", reference=_causal_conv)


@dataclass(frozen=True)
class TensorScatterAttrs:
    axis: int                    # the sequence axis (>= 1, non-negative)
    circular: bool = False


def _tensor_scatter(node, xs):
    a = node.attrs
    cache, update = xs[0], xs[1]
    idx = xs[2] if len(xs) > 2 else np.zeros(cache.shape[0], dtype=np.int64)
    out = cache.copy()
    length = cache.shape[a.axis]
    for prefix in np.ndindex(cache.shape[:a.axis]):
        for s in range(update.shape[a.axis]):
            pos = int(idx[prefix[0]]) + s
            if a.circular:
                pos %= length
            if 0 <= pos < length:
                out[prefix + (pos,)] = update[prefix + (s,)]
    return [out]


ir_op("TensorScatter", reference=_tensor_scatter)
