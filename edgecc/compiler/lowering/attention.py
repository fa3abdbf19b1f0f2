"""ONNX lowerings: Attention (opset 23+) and RotaryEmbedding.

Attention lowers to one IR ``Attention`` node (ir/ops/attention.py) that reads Q, K, V in
their 3-D or 4-D layout. A past key/value cache is concatenated first: the present key is
Concat(past_key, K in 4-D) along the sequence axis (a 3-D K is viewed as [batch, seq,
heads, size] and transposed), and the core reads the present tensors. Without a cache, a
requested present output is K (or V) in 4-D.

Semantics follow onnx's reference: Q and K are each scaled by sqrt(scale) (default scale
1/sqrt(head_size)); softcap is applied to the scores before the bias; the bias is the mask
(bool: 0 / -inf; shorter than the keys: padded with -inf), the causal frontier (j <= i +
offset, offset = past length, or nonpad_kv_seqlen[b] - q_len), the sliding window and the
padding of nonpad_kv_seqlen; a row whose bias is all -inf gives zeros. qk_matmul_output is
the (softcapped) scores in modes 0 and 1, the biased scores in mode 2, the softmax in 3.
"""
from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from ...ir import DType
from ...ir.ops.attention import AttentionAttrs, RotaryAttrs
from ...ir.ops.movement import ConcatAttrs, TransposeAttrs
from ...ir.ops.shape_ops import ReshapeAttrs
from ..registry import lowering


def _to_4d(ctx, name: str, heads: int, base: str) -> str:
    """A 3-D [batch, seq, heads * size] tensor as 4-D [batch, heads, seq, size]."""
    t = ctx.type(name)
    if t.rank == 4:
        return name
    b, s, hidden = t.shape
    split = ctx.temp(f"{base}_split", t.with_shape((b, s, heads, hidden // heads)))
    ctx.emit("Reshape", [name], [split], ReshapeAttrs((b, s, heads, hidden // heads)),
             types=[ctx.type(split)])
    out = ctx.temp(f"{base}_4d", t.with_shape((b, heads, s, hidden // heads)))
    ctx.emit("Transpose", [split], [out], TransposeAttrs((0, 2, 1, 3)), types=[ctx.type(out)])
    return out


def _present(ctx, node, x: str, past: str, out_pos: int, heads: int) -> str:
    """The key (or value) the core reads: Concat(past, x in 4-D) with a cache, else x as
    it is; writes the present output when the node has one."""
    out = node.output[out_pos] if len(node.output) > out_pos else ""
    if not past and not out:
        return x
    x4 = _to_4d(ctx, x, heads, out or f"{node.output[0]}_kv{out_pos}")
    if not past:
        ctx.emit("Identity", [x4], [out], types=[ctx.type(x4)])
        return out
    pt, xt = ctx.type(past), ctx.type(x4)
    if pt.rank != 4 or pt.shape[:2] != xt.shape[:2] or pt.shape[3] != xt.shape[3]:
        raise ctx.error(f"past {pt} does not match the new keys/values {xt}")
    shape = (xt.shape[0], xt.shape[1], pt.shape[2] + xt.shape[2], xt.shape[3])
    dst = out or ctx.temp(f"{node.output[0]}_present{out_pos}", xt.with_shape(shape))
    ctx.emit("Concat", [past, x4], [dst], ConcatAttrs(2), types=[xt.with_shape(shape)])
    return dst


@lowering("Attention")
def lower_attention(ctx, node):
    q, k, v = node.input[0], node.input[1], node.input[2]
    mask, past_k, past_v = ctx.input(3), ctx.input(4), ctx.input(5)
    nonpad = ctx.input(6)
    qt, kt, vt = ctx.type(q), ctx.type(k), ctx.type(v)
    if qt.dtype not in (DType.FLOAT32, DType.FLOAT64) or kt.dtype != qt.dtype \
            or vt.dtype != qt.dtype:
        raise ctx.error(f"Attention on {qt.dtype.name.lower()} is not supported")
    if qt.rank not in (3, 4) or kt.rank != qt.rank or vt.rank != qt.rank:
        raise ctx.error(f"Q, K, V must all be 3-D or all 4-D (got {qt}, {kt}, {vt})")
    if bool(past_k) != bool(past_v):
        raise ctx.error("past_key and past_value must be given together")
    if nonpad and past_k:
        raise ctx.error("nonpad_kv_seqlen cannot be combined with past_key/past_value")
    if qt.rank == 3:
        hq, hkv = ctx.attr("q_num_heads", 0), ctx.attr("kv_num_heads", 0)
        if hq <= 0 or hkv <= 0:
            raise ctx.error("3-D inputs need q_num_heads and kv_num_heads")
        if qt.shape[2] % hq or kt.shape[2] % hkv or vt.shape[2] % hkv:
            raise ctx.error("hidden sizes must be multiples of the head counts")
        head_size = qt.shape[2] // hq
        k_size = kt.shape[2] // hkv
    else:
        hq, hkv = qt.shape[1], kt.shape[1]
        head_size, k_size = qt.shape[3], kt.shape[3]
        if vt.shape[1] != hkv:
            raise ctx.error(f"K and V have different head counts ({kt}, {vt})")
    if hq % hkv or head_size != k_size or kt.shape[0] != qt.shape[0]:
        raise ctx.error(f"incompatible Q {qt} and K {kt} (heads {hq}/{hkv})")
    scale = ctx.attr("scale", None)
    scale = 1.0 / math.sqrt(head_size) if scale is None else float(scale)
    if scale < 0:
        raise ctx.error(f"scale {scale} is negative")
    precision = ctx.attr("softmax_precision", None)
    if precision not in (None, qt.dtype.onnx_type, TensorProto.FLOAT, TensorProto.DOUBLE):
        raise ctx.error(f"softmax_precision {precision} is not supported")
    mode = int(ctx.attr("qk_matmul_output_mode", 0))
    if mode not in (0, 1, 2, 3):
        raise ctx.error(f"qk_matmul_output_mode {mode} is not supported")
    past_len = ctx.type(past_k).shape[2] if past_k else 0
    keys = _present(ctx, node, k, past_k, 1, hkv)
    values = _present(ctx, node, v, past_v, 2, hkv)
    length = ctx.type(keys).shape[1 if ctx.type(keys).rank == 3 else 2]
    if ctx.type(values).shape[1 if ctx.type(values).rank == 3 else 2] != length:
        raise ctx.error("K and V have different sequence lengths")
    batch, sq = qt.shape[0], qt.shape[1 if qt.rank == 3 else 2]
    if mask:
        mt = ctx.type(mask)
        lead = (1,) * (4 - mt.rank) + tuple(mt.shape[:-1]) if 1 <= mt.rank <= 4 else None
        if (lead is None or mt.shape[-1] > length
                or any(d not in (1, w) for d, w in zip(lead, (batch, hq, sq)))):
            raise ctx.error(f"attn_mask {mt} does not broadcast to [{batch}, {hq}, {sq}, "
                            f"{length}]")
        if mt.dtype != DType.BOOL and mt.dtype != qt.dtype:
            raise ctx.error(f"attn_mask of type {mt.dtype.name.lower()} is not supported")
    if nonpad and (ctx.type(nonpad).shape != (batch,) or ctx.type(nonpad).dtype != DType.INT64):
        raise ctx.error(f"nonpad_kv_seqlen must be int64 of shape [{batch}]")
    attrs = AttentionAttrs(
        q_heads=hq, kv_heads=hkv,
        scale_sqrt=float(np.asarray(np.sqrt(scale), qt.dtype.np_dtype)),
        is_causal=bool(ctx.attr("is_causal", 0)),
        softcap=float(ctx.attr("softcap", 0.0)), qk_mode=mode,
        softmax_double=precision == TensorProto.DOUBLE and qt.dtype == DType.FLOAT32,
        left_window=int(ctx.attr("left_window_size", -1)),
        right_window=int(ctx.attr("right_window_size", -1)), past_len=past_len)
    qk_out = node.output[3] if len(node.output) > 3 else ""
    ctx.emit("Attention", [q, keys, values, mask, nonpad], [node.output[0], qk_out], attrs)


@lowering("RotaryEmbedding")
def lower_rotary(ctx, node):
    x, cos, sin = node.input[0], node.input[1], node.input[2]
    pos = ctx.input(3)
    xt, ct, st = ctx.type(x), ctx.type(cos), ctx.type(sin)
    if xt.dtype not in (DType.FLOAT32, DType.FLOAT64) or ct.dtype != xt.dtype \
            or st.dtype != xt.dtype:
        raise ctx.error(f"RotaryEmbedding on {xt.dtype.name.lower()} is not supported")
    if xt.rank == 4:
        batch, heads, seq, size = xt.shape
    elif xt.rank == 3:
        heads = int(ctx.attr("num_heads", 0))
        if heads <= 0 or xt.shape[2] % heads:
            raise ctx.error("a 3-D input needs num_heads dividing its hidden size")
        batch, seq, size = xt.shape[0], xt.shape[1], xt.shape[2] // heads
    else:
        raise ctx.error(f"input {xt} must be 3-D or 4-D")
    rot = int(ctx.attr("rotary_embedding_dim", 0)) or size
    if rot % 2 or rot > size:
        raise ctx.error(f"rotary_embedding_dim {rot} must be even and at most {size}")
    if pos:
        pt = ctx.type(pos)
        want = (ct.shape[0] if ct.rank == 2 else -1, rot // 2)
        if pt.shape != (batch, seq) or pt.dtype != DType.INT64 or ct.shape != want \
                or ct.shape[0] == 0:
            raise ctx.error(f"position_ids {pt} and caches {ct} do not fit the input {xt}")
    elif ct.shape != (batch, seq, rot // 2):
        raise ctx.error(f"caches must be [{batch}, {seq}, {rot // 2}] without position_ids")
    if st.shape != ct.shape:
        raise ctx.error(f"cos cache {ct} and sin cache {st} differ")
    attrs = RotaryAttrs(heads, rot, bool(ctx.attr("interleaved", 0)))
    ctx.emit("RotaryEmbedding", [x, cos, sin, pos], [node.output[0]], attrs)
