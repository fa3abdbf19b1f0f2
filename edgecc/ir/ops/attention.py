"""IR ops (attribute records and facts): Attention (opset 23+) and RotaryEmbedding.

``Attention`` is the core of ONNX Attention: scores of one query row against every key,
softcap, additive bias (attention mask, causal and sliding-window frontiers, padding of
``nonpad_kv_seqlen``), softmax and the weighted sum of values. Its inputs are
(Q, K, V, mask or "", nonpad_kv_seqlen or ""), its outputs (Y, qk_matmul_output or "").
Q, K, V and Y are 3-D ([batch, seq, heads * head_size]) or 4-D ([batch, heads, seq,
head_size]); the lowering (compiler/lowering/attention.py) has already concatenated a
past key/value cache into K and V. The numpy reference follows onnx's reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import ir_op


@dataclass(frozen=True)
class AttentionAttrs:
    q_heads: int
    kv_heads: int
    scale_sqrt: float        # Q and K are each multiplied by it (onnx: sqrt(scale))
    is_causal: bool = False
    softcap: float = 0.0     # > 0: scores become softcap * tanh(scores / softcap)
    qk_mode: int = 0         # what the qk output holds: 0/1 scores, 2 with bias, 3 softmax
    softmax_double: bool = False   # softmax in double (softmax_precision) on float input
    left_window: int = -1    # sliding window (opset 25), -1: unbounded
    right_window: int = -1
    past_len: int = 0        # keys before the current block (causal/window frontier offset)


def to_4d(x: np.ndarray, heads: int) -> np.ndarray:
    """[batch, seq, heads * size] -> [batch, heads, seq, size]; 4-D tensors as they are."""
    if x.ndim == 4:
        return x
    b, s, hidden = x.shape
    return x.reshape(b, s, heads, hidden // heads).transpose(0, 2, 1, 3)


def key_bias(a: AttentionAttrs, mask, nonpad, batch: int, sq: int, length: int):
    """The additive bias [batch, q_heads or 1, sq, length] (0 or -inf plus the float mask),
    in float64 (exact: the float mask plus zeros and infinities)."""
    bias = np.zeros((batch, 1, sq, length), dtype=np.float64)
    if mask is not None:
        pad = length - mask.shape[-1]
        if mask.dtype == np.bool_:
            m = np.where(mask, 0.0, -np.inf)
        else:
            m = mask.astype(np.float64)
        m = np.pad(m, [(0, 0)] * (m.ndim - 1) + [(0, pad)], constant_values=-np.inf)
        bias = bias + m.reshape((1,) * (4 - m.ndim) + m.shape)
    i = np.arange(sq).reshape(1, 1, sq, 1)
    j = np.arange(length).reshape(1, 1, 1, length)
    if nonpad is not None:
        offset = nonpad.reshape(-1, 1, 1, 1).astype(np.int64) - sq
    else:
        offset = np.full((batch, 1, 1, 1), a.past_len, dtype=np.int64)
    if a.is_causal:
        bias = bias + np.where(j <= i + offset, 0.0, -np.inf)
    diff = i + offset - j
    if a.left_window >= 0:
        bias = bias + np.where(diff <= a.left_window, 0.0, -np.inf)
    if a.right_window >= 0:
        bias = bias + np.where(-diff <= a.right_window, 0.0, -np.inf)
    if nonpad is not None:
        bias = bias + np.where(j < nonpad.reshape(-1, 1, 1, 1), 0.0, -np.inf)
    return bias


def _reference(node, xs):
    a = node.attrs
    q, k, v = xs[0], xs[1], xs[2]
    names = list(node.inputs) + [""] * (5 - len(node.inputs))
    mask = xs[3] if names[3] else None
    nonpad = xs[4 if names[3] else 3] if names[4] else None
    dt = q.dtype.type
    q4, k4, v4 = to_4d(q, a.q_heads), to_4d(k, a.kv_heads), to_4d(v, a.kv_heads)
    reps = a.q_heads // a.kv_heads
    k4, v4 = np.repeat(k4, reps, axis=1), np.repeat(v4, reps, axis=1)
    ss = dt(a.scale_sqrt)
    with np.errstate(all="ignore"):
        s = np.matmul(q4 * ss, np.swapaxes(k4 * ss, 2, 3))
        if a.softcap > 0:
            s = (np.tanh(s / dt(a.softcap)) * dt(a.softcap)).astype(q.dtype)
        bias = key_bias(a, mask, nonpad, q4.shape[0], q4.shape[2], k4.shape[2]).astype(q.dtype)
        t = s + bias
        qk = t if a.qk_mode == 2 else s
        st = t.astype(np.float64) if a.softmax_double else t
        m = np.max(st, axis=-1, keepdims=True)
        m = np.where(np.isneginf(m), 0, m)
        e = np.exp(st - m)
        total = np.sum(e, axis=-1, keepdims=True)
        p = e / np.where(total == 0, 1, total)
        p = np.where(np.isneginf(np.max(bias, axis=-1, keepdims=True)), 0, p)
        if a.qk_mode == 3:
            qk = p
        y = np.matmul(p.astype(q.dtype), v4)
    if q.ndim == 3:
        y = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
    return [y.astype(q.dtype), qk.astype(q.dtype)]  # by position (an unused qk is dropped)


ir_op("Attention", reference=_reference)


@dataclass(frozen=True)
class RotaryAttrs:
    """RotaryEmbedding: rotate the first ``rotary_dim`` values of each head of x [batch,
    heads, seq, size] (4-D) or [batch, seq, heads * size] (3-D) by the cached angles: pairs
    (i, i + rotary_dim / 2), or (2i, 2i + 1) when ``interleaved``. Inputs (x, cos, sin,
    position_ids or ""): the caches are [positions, rotary_dim / 2] indexed by position_ids
    [batch, seq] (clamped into range), or [batch, seq, rotary_dim / 2] without them."""

    num_heads: int
    rotary_dim: int
    interleaved: bool = False


def _rotary_reference(node, xs):
    a = node.attrs
    x, cos, sin = xs[0], xs[1], xs[2]
    if len(xs) > 3:
        pos = np.clip(xs[3], 0, cos.shape[0] - 1)
        cos, sin = cos[pos], sin[pos]
    x4 = x.transpose(0, 2, 1, 3) if x.ndim == 4 else x.reshape(x.shape[:2] + (a.num_heads, -1))
    rot, rest = x4[..., :a.rotary_dim], x4[..., a.rotary_dim:]
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    if a.interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
    else:
        x1, x2 = np.split(rot, 2, axis=-1)
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    if a.interleaved:
        rot = np.stack((real, imag), axis=-1).reshape(rot.shape)
    else:
        rot = np.concatenate((real, imag), axis=-1)
    y = np.concatenate((rot, rest), axis=-1).astype(x.dtype)
    return [y.transpose(0, 2, 1, 3) if x.ndim == 4 else y.reshape(x.shape)]


ir_op("RotaryEmbedding", reference=_rotary_reference)
