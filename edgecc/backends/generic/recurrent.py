"""Portable C kernels for RNN, GRU and LSTM (see ir/ops/recurrent.py for the semantics).

One function per layer loops over directions, batch entries and time steps
(templates/recurrent_base.c.j2); each op's template fills in one step, its gate products as
plain dot-product loops over the rows of W and R (constant arrays). The state lives in the
node's work tensor: h, the next h, and the LSTM cell state or GRU's z and r * h."""
from __future__ import annotations

from ...ir import DType
from ...ir.ops.recurrent import GATES, roles
from ..codegen import c_literal
from ..kernels import Kernel, kernel
from .elementwise import activation_expr, math_fn


def _fn_expr(fn, v: str, dtype: DType) -> str:
    """C expression of one activation applied to the variable ``v``."""
    lit = lambda x: c_literal(x, dtype)  # noqa: E731
    f = lambda name: math_fn(dtype, name)  # noqa: E731
    if fn.kind == "Affine":
        return f"({lit(fn.alpha)} * {v} + {lit(fn.beta)})"
    if fn.kind == "ThresholdedRelu":
        return f"({v} >= {lit(fn.alpha)} ? {v} : {lit(0.0)})"
    if fn.kind == "ScaledTanh":
        return f"({lit(fn.alpha)} * {f('tanh')}({lit(fn.beta)} * {v}))"
    if fn.kind == "Softplus":  # log(1 + e^v) without overflow
        return (f"({v} > {lit(0.0)} ? {v} + {f('log1p')}({f('exp')}(-{v})) "
                f": {f('log1p')}({f('exp')}({v})))")
    return activation_expr(fn.kind, v, dtype, fn.alpha, fn.beta)


def _activation(attrs, k: int, dtype: DType):
    """v -> C expression of activation k (f, g, h) of the direction ``d`` in the loop."""
    def expr(v: str) -> str:
        e0 = _fn_expr(attrs.fn(0, k), v, dtype)
        if attrs.directions == 1 or attrs.fn(1, k) == attrs.fn(0, k):
            return e0
        return f"(d == 0 ? {e0} : {_fn_expr(attrs.fn(1, k), v, dtype)})"
    return expr


def _clip(attrs, dtype: DType):
    """(v, ...) -> the C statements clamping each v to [-clip, clip], indented for the step
    loops (empty without clip: the template's line stays blank)."""
    if attrs.clip is None:
        return lambda *vs: ""
    c = c_literal(attrs.clip, dtype)
    return lambda *vs: "\n".join(f"{' ' * 16}if ({v} < -{c}) {v} = -{c}; "
                                 f"else if ({v} > {c}) {v} = {c};" for v in vs)


@kernel("RNN", "GRU", "LSTM")
def recurrent(ctx, node):
    a = node.attrs
    ins, outs = roles(node.op)
    tensors = dict.fromkeys(roles("LSTM")[0] + roles("LSTM")[1])  # every role, None if absent
    tensors.update((role, ctx.view(name) if name else None)
                   for role, name in zip(ins + outs, node.inputs + node.outputs))
    x = tensors["X"]
    steps, batch, size = (x.shape[1], x.shape[0], x.shape[2]) if a.layout else x.shape
    D, H = a.directions, a.hidden
    # offsets of X[t, n], Y[t, d, n] and a state [d, n] (layout 1: batch first)
    if a.layout:
        x_at, y_at = f"(n * {steps} + t) * {size}", f"((n * {steps} + t) * {D} + d) * {H}"
        state_at = f"(n * {D} + d) * {H}"
    else:
        x_at, y_at = f"(t * {batch} + n) * {size}", f"((t * {D} + d) * {batch} + n) * {H}"
        state_at = f"(d * {batch} + n) * {H}"
    rev = {"forward": "0", "reverse": "1", "bidirectional": "d"}[a.direction]
    dtype = x.dtype
    context = dict(
        t=tensors, T=x.ctype, steps=steps, batch=batch, size=size, D=D, H=H, G=GATES[node.op],
        x_at=x_at, y_at=y_at, state_at=state_at, rev=rev, lbr=a.linear_before_reset,
        input_forget=a.input_forget, clip=_clip(a, dtype),
        f=_activation(a, 0, dtype), g=_activation(a, 1, dtype) if node.op != "RNN" else None,
        h=_activation(a, 2, dtype) if node.op == "LSTM" else None,
        zero=c_literal(0.0, dtype), one=c_literal(1.0, dtype))
    args = [name for name in node.inputs + node.outputs if name]
    return Kernel(f"recurrent_{node.op.lower()}.c.j2", context, args)
