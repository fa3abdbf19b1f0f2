"""Portable C kernels for pointwise ops (see compiler/lowering/elementwise.py)."""
from __future__ import annotations

from ...ir import DType
from ..codegen import c_literal
from ..kernels import Kernel, broadcast_strides, collapse_loops, kernel


def _fn(dtype: DType, name: str) -> str:
    """C math function for the element type: expf for float, exp for double."""
    return name + ("f" if dtype == DType.FLOAT32 else "")


def activation_expr(kind: str, v: str, dtype: DType, alpha=0.0, beta=0.0,
                    approximate: str = "none") -> str:
    """C expression of activation ``kind`` applied to the expression ``v``."""
    lit = lambda x: c_literal(x, dtype)  # noqa: E731
    one, zero, half = lit(1.0), lit(0.0), lit(0.5)
    f = lambda name: _fn(dtype, name)  # noqa: E731
    if kind == "Relu":
        return f"({v} > 0 ? {v} : 0)"
    if kind == "LeakyRelu":
        return f"({v} >= 0 ? {v} : {v} * {lit(alpha)})"
    if kind == "Clip":
        lo, hi = lit(alpha), lit(beta)
        return f"({v} < {lo} ? {lo} : ({v} > {hi} ? {hi} : {v}))"
    if kind == "Sigmoid":
        return f"({one} / ({one} + {f('exp')}(-{v})))"
    if kind == "HardSigmoid":
        t = f"({lit(alpha)} * {v} + {lit(beta)})"
        return f"({t} < {zero} ? {zero} : ({t} > {one} ? {one} : {t}))"
    if kind == "HardSwish":
        t = f"({v} / {lit(6.0)} + {half})"
        return f"({v} * ({t} < {zero} ? {zero} : ({t} > {one} ? {one} : {t})))"
    if kind == "Tanh":
        return f"{f('tanh')}({v})"
    if kind == "Exp":
        return f"{f('exp')}({v})"
    if kind == "Log":
        return f"{f('log')}({v})"
    if kind == "Sqrt":
        return f"{f('sqrt')}({v})"
    if kind == "Erf":
        return f"{f('erf')}({v})"
    if kind == "Neg":
        return f"(-{v})"
    if kind == "Abs":
        return f"({v} < 0 ? -{v} : {v})"
    if kind == "Gelu":
        if approximate == "tanh":
            inner = f"{lit(0.7978845608028654)} * ({v} + {lit(0.044715)} * {v} * {v} * {v})"
            return f"({half} * {v} * ({one} + {f('tanh')}({inner})))"
        return f"({half} * {v} * ({one} + {f('erf')}({v} * {lit(0.7071067811865476)})))"
    raise KeyError(kind)


@kernel("Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Exp",
        "Log", "Sqrt", "Erf", "Neg", "Abs", "Gelu")
def unary(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    expr = activation_expr(node.op, "v", x.dtype, a.alpha, a.beta, a.approximate)
    return Kernel("unary.c.j2", dict(x=x, y=y, expr=expr), [x.name, y.name])


@kernel("Cast")
def cast(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    if y.dtype == DType.BOOL:
        expr = "(uint8_t)(v != 0)"
    elif x.dtype.is_float and not y.dtype.is_float:
        # Out-of-range float -> int is undefined in C; saturate like onnxruntime's casts do.
        expr = f"({y.ctype})(v)"
    else:
        expr = f"({y.ctype})(v)"
    return Kernel("unary.c.j2", dict(x=x, y=y, expr=expr), [x.name, y.name])


@kernel("Identity")
def identity(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return Kernel("unary.c.j2", dict(x=x, y=y, expr="v"), [x.name, y.name])


def binary_expr(op: str, a: str, b: str, dtype: DType, out_dtype: DType) -> str:
    if op == "Add":
        return f"{a} + {b}"
    if op == "Sub":
        return f"{a} - {b}"
    if op == "Mul":
        return f"{a} * {b}"
    if op == "Div":
        return f"{a} / {b}"
    if op == "Min":
        return f"({a} < {b} ? {a} : {b})"
    if op == "Max":
        return f"({a} > {b} ? {a} : {b})"
    if op == "PRelu":
        return f"({a} < 0 ? {a} * {b} : {a})"
    if op == "Pow":
        if dtype == DType.FLOAT32:
            return f"({out_dtype.c_type})powf({a}, (float){b})"
        return f"({out_dtype.c_type})pow((double){a}, (double){b})"
    raise KeyError(op)


@kernel("Add", "Sub", "Mul", "Div", "Pow", "Min", "Max", "PRelu")
def binary(ctx, node):
    a, b = ctx.view(node.inputs[0]), ctx.view(node.inputs[1])
    y = ctx.view(node.outputs[0])
    dims, (sa, sb, sy) = collapse_loops(y.shape, broadcast_strides(a.shape, y.shape),
                                        broadcast_strides(b.shape, y.shape), y.strides)
    expr = binary_expr(node.op, "va", "vb", a.dtype, y.dtype)
    return Kernel("binary.c.j2", dict(a=a, b=b, y=y, dims=dims, sa=sa, sb=sb, sy=sy,
                                      expr=expr), [a.name, b.name, y.name])
