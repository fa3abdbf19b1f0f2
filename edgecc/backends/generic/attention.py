"""Portable C kernels: Attention (opset 23+) and RotaryEmbedding.

Attention (templates/attention_core.c.j2) loops over batch, query head and query row; each
row's scores are computed twice (once for the maximum, once for the softmax and the
weighted values) so that no scratch memory is needed. Q, K, V and Y are read through
(batch, head, sequence) strides, which covers the 3-D and 4-D layouts.
"""
from __future__ import annotations

from ...ir import DType
from ..codegen import c_literal
from ..kernels import Kernel, broadcast_strides, kernel


def _strides(view, heads: int):
    """(batch, head, sequence) element strides and head size of a 3-D or 4-D tensor."""
    if view.rank == 4:
        s = view.strides
        return (s[0], s[1], s[2]), view.shape[3]
    _, seq, hidden = view.shape
    return (seq * hidden, hidden // heads, hidden), hidden // heads


@kernel("Attention")
def attention(ctx, node):
    a = node.attrs
    q, k, v = (ctx.view(n) for n in node.inputs[:3])
    mask = ctx.view(node.inputs[3]) if node.inputs[3] else None
    nonpad = ctx.view(node.inputs[4]) if node.inputs[4] else None
    y = ctx.view(node.outputs[0])
    qk = ctx.view(node.outputs[1]) if len(node.outputs) > 1 and node.outputs[1] else None
    (qsb, qsh, qss), D = _strides(q, a.q_heads)
    (ksb, ksh, kss), _ = _strides(k, a.kv_heads)
    (vsb, vsh, vss), Dv = _strides(v, a.kv_heads)
    (ysb, ysh, yss), _ = _strides(y, a.q_heads)
    B = q.shape[0]
    Sq = q.shape[1] if q.rank == 3 else q.shape[2]
    L = k.shape[1] if k.rank == 3 else k.shape[2]
    group = a.q_heads // a.kv_heads
    params = dict(B=B, Hq=a.q_heads, kv_head="h" if group == 1 else f"(h / {group})", Sq=Sq,
                  L=L, D=D, Dv=Dv, qsb=qsb, qsh=qsh, qss=qss, ksb=ksb, ksh=ksh, kss=kss,
                  vsb=vsb, vsh=vsh, vss=vss, ysb=ysb, ysh=ysh, yss=yss, mask=mask,
                  nonpad=nonpad, qk=qk, qk_mode=a.qk_mode)
    T = q.dtype
    S = DType.FLOAT64 if a.softmax_double else T
    lit = lambda x: c_literal(x, T)  # noqa: E731
    mask_kind, mask_len, msb, msh, mss = "none", L, 0, 0, 0
    if mask is not None:
        mask_kind = "bool" if mask.dtype == DType.BOOL else "float"
        mask_len = mask.shape[-1]
        lead = (1,) * (4 - mask.rank) + tuple(mask.shape[:-1])
        msb, msh, mss = (s * mask_len for s in broadcast_strides(lead, (B, a.q_heads, Sq)))
    window = a.is_causal or a.left_window >= 0 or a.right_window >= 0
    params.update(T=T.c_type, S=S.c_type, ss=lit(a.scale_sqrt),
                  to_s=f"({S.c_type})" if S != T else "",
                  to_t=f"({T.c_type})" if S != T else "",
                  softcap=lit(a.softcap) if a.softcap > 0 else None,
                  tanh="tanhf" if T == DType.FLOAT32 else "tanh",
                  exp="expf" if S == DType.FLOAT32 else "exp",
                  mask_kind=mask_kind, mask_len=mask_len, msb=msb, msh=msh, mss=mss,
                  window=window, causal=a.is_causal, left=a.left_window, right=a.right_window,
                  offset=f"nb - {Sq}" if nonpad is not None else str(a.past_len),
                  nb_max=L + Sq + max(a.left_window, 0) + 1)
    args = [q.name, k.name, v.name] + [t.name for t in (mask, nonpad, y, qk) if t is not None]
    return Kernel("attention_core.c.j2", params, args)


@kernel("RotaryEmbedding")
def rotary(ctx, node):
    a = node.attrs
    x, cos, sin = (ctx.view(n) for n in node.inputs[:3])
    pos = ctx.view(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else None
    y = ctx.view(node.outputs[0])
    if x.rank == 4:
        B, H, S, D = x.shape
        sb, sh, ss = H * S * D, S * D, D
    else:
        B, S, hidden = x.shape
        H, D = a.num_heads, hidden // a.num_heads
        sb, sh, ss = S * hidden, D, hidden
    half = a.rotary_dim // 2
    lo, hi = ("2 * k", "2 * k + 1") if a.interleaved else ("k", f"k + {half}")
    args = [x.name, cos.name, sin.name] + ([pos.name] if pos else []) + [y.name]
    return Kernel("attention_rotary.c.j2", dict(
        x=x, pos=pos, B=B, H=H, S=S, D=D, sb=sb, sh=sh, ss=ss, half=half,
        rot=a.rotary_dim, lo=lo, hi=hi, positions=cos.shape[0]), args)
