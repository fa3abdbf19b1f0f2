"""Portable C kernels: ops of recent decoder models: LinearAttention, CausalConvWithState,
TensorScatter, SwiGLU, FlexAttention.

SwiGLU and FlexAttention are compositions of existing IR ops (compiler/lowering/decoder.py);
the kernels here need no scratch: LinearAttention keeps its state in the present_state
output (each column of a head's state evolves on its own, so one column at a time is
updated and read), CausalConvWithState reads the virtual concatenation [past, x] by index,
TensorScatter copies the cache and writes the update's rows in place.
"""
from __future__ import annotations

import numpy as np

from ..codegen import c_literal
from ..kernels import Kernel, kernel
from .elementwise import math_fn


@kernel("LinearAttention")
def linear_attention(ctx, node):
    a = node.attrs
    names = list(node.inputs) + [""] * (6 - len(node.inputs))
    q, k, v = (ctx.view(n) for n in names[:3])
    past, decay, beta = (ctx.view(n) if n else None for n in names[3:6])
    y, state = ctx.view(node.outputs[0]), ctx.view(node.outputs[1])
    B, T, _ = q.shape
    Dk, Dv = k.shape[2] // a.kv_heads, v.shape[2] // a.kv_heads
    args = [t.name for t in (q, k, v, past, decay, beta, y, state) if t is not None]
    return Kernel("decoder_linear_attention.c.j2", dict(
        q=q, k=k, v=v, past=past, decay=decay, beta=beta, y=y, state=state,
        B=B, T=T, Hq=a.q_heads, Hkv=a.kv_heads, group=a.q_heads // a.kv_heads, Dk=Dk, Dv=Dv,
        decay_len=decay.shape[2] if decay else 0, per_key=a.decay_per_key,
        beta_len=beta.shape[2] if beta else 0, scale=c_literal(a.scale, q.dtype),
        exp=math_fn(q.dtype, "exp")), args)


@kernel("CausalConvWithState")
def causal_conv(ctx, node):
    names = list(node.inputs) + [""] * (4 - len(node.inputs))
    x, w = ctx.view(names[0]), ctx.view(names[1])
    bias, past = (ctx.view(n) if n else None for n in names[2:4])
    y = ctx.view(node.outputs[0])
    present = ctx.view(node.outputs[1]) if len(node.outputs) > 1 and node.outputs[1] else None
    B, C, L = x.shape
    K = w.shape[2]
    args = [t.name for t in (x, w, bias, past, y, present) if t is not None]
    return Kernel("decoder_causal_conv.c.j2", dict(
        x=x, w=w, bias=bias, past=past, y=y, present=present, B=B, C=C, L=L, K=K,
        silu=node.attrs.silu, one=c_literal(1.0, x.dtype), exp=math_fn(x.dtype, "exp")), args)


@kernel("TensorScatter")
def tensor_scatter(ctx, node):
    a = node.attrs
    cache, update = ctx.view(node.inputs[0]), ctx.view(node.inputs[1])
    idx = ctx.view(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    out = ctx.view(node.outputs[0])
    shape = cache.shape
    inner = int(np.prod(shape[a.axis + 1:], dtype=np.int64))
    args = [cache.name, update.name] + ([idx.name] if idx else []) + [out.name]
    return Kernel("decoder_tensor_scatter.c.j2", dict(
        cache=cache, update=update, idx=idx, out=out, numel=cache.numel,
        batch=shape[0], per_batch=int(np.prod(shape[1:a.axis], dtype=np.int64)),
        length=shape[a.axis], seq=update.shape[a.axis], inner=inner,
        circular=a.circular), args)
