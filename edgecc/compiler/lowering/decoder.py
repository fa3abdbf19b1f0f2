"""ONNX lowerings: ops of recent decoder models: LinearAttention, CausalConvWithState,
TensorScatter, SwiGLU, FlexAttention.

LinearAttention, CausalConvWithState and TensorScatter lower to one IR op each
(ir/ops/decoder.py). SwiGLU is Swish(a, alpha) * b (Swish is a / (1 + exp(-alpha a)), the
reference's a * sigmoid(alpha a) up to one rounding). FlexAttention (ai.onnx.preview) is a
composition: scores = (Q sqrt(scale)) @ (K sqrt(scale))^T as a batched MatMul (grouped-query
heads by viewing Q as [B, Hkv, group * L, E]), score_mod, Softmax over the keys, prob_mod,
then probs @ V. A score_mod / prob_mod subgraph is inlined: it is made a model of its own
with the scores' static shape, loaded like a user model (shape inference, constant folding
of its Shape/Range/... nodes), renamed, and its nodes lowered through the same registry.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper

from ...ir import DType, UnaryAttrs
from ...ir.ops.decoder import CausalConvAttrs, LinearAttentionAttrs, TensorScatterAttrs
from ...ir.ops.gemm import MatMulAttrs
from ...ir.ops.movement import TransposeAttrs
from ...ir.ops.shape_ops import ReshapeAttrs
from ...ir.ops.softmax import SoftmaxAttrs
from ..registry import LOWERINGS, lowering
from .cast import widen_narrow_types

FLOATS = (DType.FLOAT32, DType.FLOAT64)


def _float_inputs(ctx, names, op: str):
    """The dtype shared by the given (present) inputs, which must be float or double."""
    types = [ctx.type(n) for n in names if n]
    dt = types[0].dtype
    if dt not in FLOATS or any(t.dtype != dt for t in types):
        raise ctx.error(f"{op} on {', '.join(t.dtype.name.lower() for t in types)} "
                        "is not supported")
    return dt


@lowering("LinearAttention")
def lower_linear_attention(ctx, node):
    q, k, v, past, decay, beta = (ctx.input(i) for i in range(6))
    _float_inputs(ctx, [q, k, v, past, decay, beta], "LinearAttention")
    rule = ctx.attr("update_rule", "gated_delta")
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        raise ctx.error(f"update_rule '{rule}' is not supported")
    gated, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if gated != bool(decay) or delta != bool(beta):
        raise ctx.error(f"update_rule '{rule}' needs {'a' if gated else 'no'} decay and "
                        f"{'a' if delta else 'no'} beta input")
    hq, hkv = int(ctx.attr("q_num_heads", 0)), int(ctx.attr("kv_num_heads", 0))
    qt, kt, vt = ctx.type(q), ctx.type(k), ctx.type(v)
    if hq <= 0 or hkv <= 0 or hq % hkv:
        raise ctx.error(f"q_num_heads {hq} must be a positive multiple of kv_num_heads {hkv}")
    if qt.rank != 3 or kt.rank != 3 or vt.rank != 3:
        raise ctx.error(f"query, key and value must be 3-D (got {qt}, {kt}, {vt})")
    b, t = qt.shape[:2]
    if qt.shape[2] % hq or kt.shape[2] % hkv or vt.shape[2] % hkv \
            or kt.shape[:2] != (b, t) or vt.shape[:2] != (b, t) \
            or qt.shape[2] // hq != kt.shape[2] // hkv:
        raise ctx.error(f"query {qt}, key {kt}, value {vt} do not fit {hq}/{hkv} heads")
    dk, dv = kt.shape[2] // hkv, vt.shape[2] // hkv
    if past and ctx.type(past).shape != (b, hkv, dk, dv):
        raise ctx.error(f"past_state {ctx.type(past)} must be [{b}, {hkv}, {dk}, {dv}]")
    if decay and ctx.type(decay).shape not in ((b, t, hkv), (b, t, hkv * dk)):
        raise ctx.error(f"decay {ctx.type(decay)} must be [{b}, {t}, {hkv}] or "
                        f"[{b}, {t}, {hkv * dk}]")
    if beta and ctx.type(beta).shape not in ((b, t, hkv), (b, t, 1)):
        raise ctx.error(f"beta {ctx.type(beta)} must be [{b}, {t}, {hkv}] or [{b}, {t}, 1]")
    scale = float(ctx.attr("scale", 0.0) or 0.0)
    scale = scale or 1.0 / math.sqrt(dk)
    attrs = LinearAttentionAttrs(hq, hkv, scale, gated, delta,
                                 bool(decay) and ctx.type(decay).shape[2] == hkv * dk)
    state = node.output[1] if len(node.output) > 1 and node.output[1] else ""
    state_type = (ctx.type(past) if past else qt).with_shape((b, hkv, dk, dv))
    if not state:
        state = ctx.temp(f"{node.output[0]}_state", state_type)
    ctx.emit("LinearAttention", [q, k, v, past, decay, beta], [node.output[0], state], attrs,
             types=[qt.with_shape((b, t, hq * dv)), state_type])


@lowering("CausalConvWithState")
def lower_causal_conv(ctx, node):
    x, w, bias, past = (ctx.input(i) for i in range(4))
    _float_inputs(ctx, [x, w, bias, past], "CausalConvWithState")
    act = ctx.attr("activation", "none")
    if act not in ("none", "silu", "swish"):
        raise ctx.error(f"activation '{act}' is not supported")
    xt, wt = ctx.type(x), ctx.type(w)
    if xt.rank != 3 or wt.rank != 3:
        raise ctx.error(f"input {xt} and weight {wt} must be 3-D")
    b, c, length = xt.shape
    k = wt.shape[2]
    if wt.shape[:2] != (c, 1) or k < 1:
        raise ctx.error(f"weight {wt} must be [{c}, 1, k]")
    if bias and ctx.type(bias).shape != (c,):
        raise ctx.error(f"bias {ctx.type(bias)} must be [{c}]")
    if past and ctx.type(past).shape != (b, c, k - 1):
        raise ctx.error(f"past_state {ctx.type(past)} must be [{b}, {c}, {k - 1}]")
    present = node.output[1] if len(node.output) > 1 else ""
    types = [xt, xt.with_shape((b, c, k - 1)) if present else None]
    ctx.emit("CausalConvWithState", [x, w, bias, past], [node.output[0], present],
             CausalConvAttrs(act != "none"), types=types)


@lowering("TensorScatter")
def lower_tensor_scatter(ctx, node):
    cache, update, idx = ctx.input(0), ctx.input(1), ctx.input(2)
    ct, ut = ctx.type(cache), ctx.type(update)
    axis = int(ctx.attr("axis", -2))
    axis = axis + ct.rank if axis < 0 else axis
    mode = ctx.attr("mode", "linear")
    if mode not in ("linear", "circular"):
        raise ctx.error(f"mode '{mode}' is not supported")
    if not 1 <= axis < ct.rank:
        raise ctx.error(f"axis {axis} must be after the batch axis of {ct}")
    if ut.dtype != ct.dtype or ut.rank != ct.rank or ut.shape[axis] > ct.shape[axis] or any(
            u != c for i, (u, c) in enumerate(zip(ut.shape, ct.shape)) if i != axis):
        raise ctx.error(f"update {ut} does not fit the cache {ct} along axis {axis}")
    if idx and (ctx.type(idx).shape != (ct.shape[0],)
                or ctx.type(idx).dtype not in (DType.INT64, DType.INT32)):
        raise ctx.error(f"write_indices {ctx.type(idx)} must be int64 [{ct.shape[0]}]")
    ctx.emit("TensorScatter", [cache, update, idx], [node.output[0]],
             TensorScatterAttrs(axis, mode == "circular"), types=[ct])


@lowering("SwiGLU")
def lower_swiglu(ctx, node):
    a, b = node.input[0], node.input[1]
    at = ctx.type(a)
    if at.dtype not in FLOATS or ctx.type(b) != at:
        raise ctx.error(f"SwiGLU needs float inputs of one shape (got {at}, {ctx.type(b)})")
    gate = ctx.temp(f"{node.output[0]}_swish", at)
    ctx.emit("Swish", [a], [gate], UnaryAttrs(alpha=float(ctx.attr("alpha", 1.0))))
    ctx.emit("Mul", [gate, b], [node.output[0]], types=[at])


# -- FlexAttention ---------------------------------------------------------------------


def _emit(ctx, op, inputs, base, ttype, attrs=None, out=None):
    """Emit ``op`` into a new temporary (or ``out``) of type ``ttype``; its name."""
    out = out or ctx.temp(base, ttype)
    ctx.emit(op, inputs, [out], attrs, types=[ttype])
    return out


def _reshape(ctx, x, shape, base):
    t = ctx.type(x)
    if t.shape == tuple(shape):
        return x
    return _emit(ctx, "Reshape", [x], base, t.with_shape(tuple(shape)),
                 ReshapeAttrs(tuple(shape)))


def _lower_node(ctx, node):
    """Lower one ONNX node through the registry (as the front end does)."""
    key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    entry = LOWERINGS.get(key)
    if entry is None:
        raise ctx.error(f"op {key} of a score_mod / prob_mod subgraph is not supported")
    ctx.node = node
    for pos in entry.const_inputs:
        name = ctx.input(pos)
        if name and name not in ctx.graph.constants and ctx.materialize(name) is None:
            raise ctx.error(f"input {pos} ('{name}') must be a compile-time constant")
    entry.fn(ctx, node)


def _inline_mod(ctx, graph: onnx.GraphProto, x: str, out: str, what: str) -> None:
    """Lower the single-input, single-output subgraph ``graph`` applied to ``x`` into
    ``out``: loaded as a model of its own for ``x``'s static type, then renamed."""
    from ..loader import load_static_model, static_shapes
    outer = ctx.node
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ctx.error(f"{what} must have one input and one output")
    xt = ctx.type(x)
    inner = {graph.input[0].name} | {t.name for t in graph.initializer}
    for n in graph.node:
        missing = [i for i in n.input if i and i not in inner]
        if missing:
            raise ctx.error(f"{what} reads outer tensor '{missing[0]}', which is not supported")
        inner.update(n.output)
    sub = onnx.GraphProto()
    sub.CopyFrom(graph)
    del sub.input[:], sub.output[:], sub.value_info[:]
    sub.input.append(helper.make_tensor_value_info(graph.input[0].name, xt.dtype.onnx_type,
                                                   xt.shape))
    sub.output.append(helper.make_tensor_value_info(graph.output[0].name,
                                                    xt.dtype.onnx_type, xt.shape))
    model = helper.make_model(sub, opset_imports=[helper.make_opsetid("", ctx.opset)])
    static, _ = load_static_model(f"{ctx.label}:{what}", model=model)
    static = widen_narrow_types(static)  # float16 constants of a float16 model's mod
    prefix = ctx.graph.fresh_name(f"{out}_{what}")
    src, dst = graph.input[0].name, graph.output[0].name

    def rename(n: str) -> str:
        return x if n == src else (out if n == dst else (f"{prefix}_{n}" if n else n))

    for t in static.graph.initializer:
        ctx.graph.add_constant(rename(t.name), onnx.numpy_helper.to_array(t))
    for name, value in static_shapes(static).items():
        ctx.shapes.setdefault(rename(name), value)
    produced = False
    for n in static.graph.node:
        renamed = onnx.NodeProto()
        renamed.CopyFrom(n)
        renamed.input[:] = [rename(i) for i in n.input]
        renamed.output[:] = [rename(o) for o in n.output]
        if not renamed.name:
            renamed.name = f"{outer.name or outer.output[0]}/{what}/{n.op_type}"
        _lower_node(ctx, renamed)
        produced |= out in renamed.output
    ctx.node = outer
    if not produced and out not in ctx.graph.constants:  # the output is the input itself
        ctx.alias_output(x, out)
    if ctx.type(out) != xt:
        raise ctx.error(f"{what} changes the scores' type {xt} into {ctx.type(out)}")


@lowering("ai.onnx.preview.FlexAttention")
def lower_flex_attention(ctx, node):
    q, k, v = node.input[0], node.input[1], node.input[2]
    dt = _float_inputs(ctx, [q, k, v], "FlexAttention")
    qt, kt, vt = ctx.type(q), ctx.type(k), ctx.type(v)
    if qt.rank != 4 or kt.rank != 4 or vt.rank != 4:
        raise ctx.error(f"Q, K, V must be 4-D (got {qt}, {kt}, {vt})")
    b, hq, length, e = qt.shape
    _, hkv, s, ek = kt.shape
    ev = vt.shape[3]
    if (kt.shape[0] != b or vt.shape[:3] != (b, hkv, s) or ek != e or hkv <= 0
            or hq % hkv):
        raise ctx.error(f"Q {qt}, K {kt}, V {vt} do not fit (heads {hq}/{hkv})")
    precision = ctx.attr("softmax_precision", None)
    if precision not in (None, TensorProto.FLOAT if dt == DType.FLOAT32 else dt.onnx_type):
        raise ctx.error(f"softmax_precision {precision} is not supported")
    scale = ctx.attr("scale", None)
    scale = 1.0 / math.sqrt(e) if scale is None else float(scale)
    ss = np.asarray(np.sqrt(np.float32(scale)), dtype=dt.np_dtype).reshape(1)
    ss_name = ctx.add_constant(f"{node.output[0]}_sqrt_scale", ss)
    group, base = hq // hkv, node.output[0]
    qs = _emit(ctx, "Mul", [q, ss_name], f"{base}_qs", qt)
    qs = _reshape(ctx, qs, (b, hkv, group * length, e), f"{base}_qg")
    ks = _emit(ctx, "Mul", [k, ss_name], f"{base}_ks", kt)
    kst = _emit(ctx, "Transpose", [ks], f"{base}_kt", kt.with_shape((b, hkv, e, s)),
                TransposeAttrs((0, 1, 3, 2)))
    scores = _emit(ctx, "MatMul", [qs, kst], f"{base}_scores",
                   qt.with_shape((b, hkv, group * length, s)), MatMulAttrs())
    scores = _reshape(ctx, scores, (b, hq, length, s), f"{base}_scores4")
    score_mod, prob_mod = ctx.attr("score_mod"), ctx.attr("prob_mod")
    if score_mod is not None:
        modded = ctx.graph.fresh_name(f"{base}_score_mod")
        _inline_mod(ctx, score_mod, scores, modded, "score_mod")
        scores = modded
    probs = _emit(ctx, "Softmax", [scores], f"{base}_probs", ctx.type(scores),
                  SoftmaxAttrs(3, 4))
    if prob_mod is not None:
        modded = ctx.graph.fresh_name(f"{base}_prob_mod")
        _inline_mod(ctx, prob_mod, probs, modded, "prob_mod")
        probs = modded
    probs = _reshape(ctx, probs, (b, hkv, group * length, s), f"{base}_probs_g")
    yt = vt.with_shape((b, hq, length, ev))
    if group == 1:
        _emit(ctx, "MatMul", [probs, v], base, yt, MatMulAttrs(), out=node.output[0])
        return
    y = _emit(ctx, "MatMul", [probs, v], f"{base}_yg", yt.with_shape(
        (b, hkv, group * length, ev)), MatMulAttrs())
    _emit(ctx, "Reshape", [y], base, yt, ReshapeAttrs(yt.shape), out=node.output[0])
