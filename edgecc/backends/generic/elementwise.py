"""Portable C kernels for pointwise ops (compiler/lowering/elementwise.py; Cast: cast.py).

Integer arithmetic that can overflow (Add, Sub, Mul, Neg, Abs, PRelu) is done in the unsigned
type of the same width and converted back, so it wraps like onnxruntime instead of being
undefined behaviour in C. Float -> integer conversions saturate (NaN -> 0).
"""
from __future__ import annotations

from ...ir import DType
from ...ir.ops import IR_OPS
from ..codegen import c_literal
from ..kernels import Kernel, broadcast_strides, collapse_loops, kernel


def math_fn(dtype: DType, name: str) -> str:
    """C math function for the element type: expf for float, exp for double."""
    return name + ("f" if dtype == DType.FLOAT32 else "")


def unsigned_ctype(dtype: DType) -> str:
    """The unsigned C type integer arithmetic of ``dtype`` wraps in (never narrower than int)."""
    return "uint64_t" if dtype.itemsize == 8 else "uint32_t"


def wrap(op: str, a: str, b: str, dtype: DType) -> str:
    """``a op b`` for integers, computed modulo 2^bits (no signed overflow)."""
    u = unsigned_ctype(dtype)
    return f"({dtype.c_type})(({u}){a} {op} ({u}){b})"


def int_limits(dtype: DType):
    import numpy as np
    info = np.iinfo(dtype.np_dtype)
    return int(info.min), int(info.max)


def saturate_expr(v: str, src: DType, dst: DType) -> str:
    """C expression converting float variable ``v`` (type ``src``) to integer type ``dst``.

    Out-of-range values clamp to the type's limits and NaN gives 0: a plain C cast would be
    undefined behaviour there. The bounds are powers of two, exact in float and double.
    """
    lo, hi = int_limits(dst)
    flo = lambda x: c_literal(float(x), src)  # noqa: E731
    t = dst.c_type
    if lo == 0:
        return (f"(!({v} > {flo(-1)}) ? ({t})0 : ({v} >= {flo(hi + 1)} ? {c_literal(hi, dst)} "
                f": ({t})({v})))")
    return (f"({v} != {v} ? ({t})0 : ({v} <= {flo(lo)} ? {c_literal(lo, dst)} : "
            f"({v} >= {flo(hi + 1)} ? {c_literal(hi, dst)} : ({t})({v}))))")


def clip_expr(v: str, dtype: DType, lo, hi) -> str:
    """min(max(v, lo), hi); a bound that cannot clip (infinite, or the type's limit) is left
    out. When lo > hi every element becomes hi, as the ONNX spec says. NaN stays NaN (both
    comparisons are false), as in onnxruntime; a missing float bound arrives as the type's
    largest finite value (compiler/lowering/elementwise.py), which does clip infinities."""
    if dtype.is_float:
        has_lo = lo is not None and float(lo) != float("-inf")
        has_hi = hi is not None and float(hi) != float("inf")
    else:
        tmin, tmax = int_limits(dtype)
        has_lo = lo is not None and int(lo) > tmin
        has_hi = hi is not None and int(hi) < tmax
    out = v
    if has_lo:
        lit = c_literal(lo, dtype)
        out = f"({v} < {lit} ? {lit} : {v})"
    if has_hi:
        lit = c_literal(hi, dtype)
        out = f"({out} > {lit} ? {lit} : {out})"
    return out


def activation_expr(kind: str, v: str, dtype: DType, alpha=0.0, beta=0.0,
                    approximate: str = "none") -> str:
    """C expression of activation ``kind`` applied to the expression ``v``."""
    lit = lambda x: c_literal(x, dtype)  # noqa: E731
    one, zero, half = lit(1.0), lit(0.0), lit(0.5)
    f = lambda name: math_fn(dtype, name)  # noqa: E731
    if kind == "Clip":
        return clip_expr(v, dtype, alpha, beta)
    if not dtype.is_float:
        u = unsigned_ctype(dtype)
        neg = f"({dtype.c_type})(({u})0 - ({u}){v})"
        if kind == "Relu":
            return f"({v} > 0 ? {v} : 0)" if dtype.is_signed else v
        if kind == "Neg":
            return neg
        if kind == "Abs":
            return f"({v} < 0 ? {neg} : {v})" if dtype.is_signed else v
        if kind == "Sign":
            t = dtype.c_type
            return f"({t})(({v} > 0) - ({v} < 0))" if dtype.is_signed else f"({t})({v} > 0)"
        raise KeyError(kind)
    # Each expression maps NaN to NaN, as onnxruntime does (tests/test_nan.py): a comparison
    # with NaN is false, so a clamp tests for the values it replaces (Relu: v < 0, not v > 0)
    # and NaN takes the branch that keeps or scales v. Except where onnxruntime gives 0:
    # ThresholdedRelu (v > alpha ? v : 0) and Shrink.
    if kind == "Relu":
        return f"({v} < {zero} ? {zero} : {v})"
    if kind == "LeakyRelu":
        return f"({v} >= {zero} ? {v} : {v} * {lit(alpha)})"
    if kind == "Sigmoid":
        return f"({one} / ({one} + {f('exp')}(-{v})))"
    if kind == "HardSigmoid":
        t = f"({lit(alpha)} * {v} + {lit(beta)})"
        return f"({t} < {zero} ? {zero} : ({t} > {one} ? {one} : {t}))"
    if kind == "HardSwish":
        t = f"({v} / {lit(6.0)} + {half})"
        return f"({v} * ({t} < {zero} ? {zero} : ({t} > {one} ? {one} : {t})))"
    if kind == "Elu":
        return f"({v} >= {zero} ? {v} : {lit(alpha)} * {f('expm1')}({v}))"
    if kind == "Softsign":
        return f"({v} / ({one} + {f('fabs')}({v})))"
    if kind in ("Tanh", "Exp", "Log", "Sqrt", "Erf", "Floor", "Ceil", "Sin", "Cos", "Tan",
                "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh"):
        return f"{f(kind.lower())}({v})"
    extra = _math_expr(kind, v, dtype, alpha, beta)
    if extra is not None:
        return extra
    if kind == "Neg":
        return f"(-{v})"
    if kind == "Abs":
        return f"{f('fabs')}({v})"
    if kind == "Gelu":
        if approximate == "tanh":
            inner = f"{lit(0.7978845608028654)} * ({v} + {lit(0.044715)} * {v} * {v} * {v})"
            return f"({half} * {v} * ({one} + {f('tanh')}({inner})))"
        return f"({half} * {v} * ({one} + {f('erf')}({v} * {lit(0.7071067811865476)})))"
    raise KeyError(kind)


def softplus_expr(v: str, dtype: DType) -> str:
    """log(1 + exp(v)) without overflow (v + log1p(exp(-v)) for v > 0); NaN stays NaN."""
    f = lambda name: math_fn(dtype, name)  # noqa: E731
    zero = c_literal(0.0, dtype)
    log1p, exp = f("log1p"), f("exp")
    return f"({v} > {zero} ? {v} + {log1p}({exp}(-{v})) : {log1p}({exp}({v})))"


def _math_expr(kind: str, v: str, dtype: DType, alpha, beta):
    """C expression of the float unary ops added with the operator coverage work (Selu, Celu,
    Softplus, Mish, Swish, ThresholdedRelu, Shrink, Sign, Reciprocal, Round), or None."""
    lit = lambda x: c_literal(x, dtype)  # noqa: E731
    f = lambda name: math_fn(dtype, name)  # noqa: E731
    one, zero, half = lit(1.0), lit(0.0), lit(0.5)
    if kind == "Selu":  # gamma (beta) * (v > 0 ? v : alpha e^v - alpha), as onnxruntime
        a = lit(alpha)
        return f"({lit(beta)} * ({v} > {zero} ? {v} : {a} * {f('exp')}({v}) - {a}))"
    if kind == "Celu":
        return f"({v} > {zero} ? {v} : {lit(alpha)} * {f('expm1')}({v} / {lit(alpha)}))"
    if kind == "Softplus":
        return softplus_expr(v, dtype)
    if kind == "Mish":
        return f"({v} * {f('tanh')}({softplus_expr(v, dtype)}))"
    if kind == "Swish":
        return f"({v} / ({one} + {f('exp')}({lit(-alpha)} * {v})))"
    if kind == "ThresholdedRelu":
        return f"({v} > {lit(alpha)} ? {v} : {zero})"
    if kind == "Shrink":  # alpha = lambd, beta = bias
        lam, bias = lit(alpha), lit(beta)
        return f"({v} < {lit(-alpha)} ? {v} + {bias} : ({v} > {lam} ? {v} - {bias} : {zero}))"
    if kind == "Sign":  # NaN stays NaN
        return (f"({v} > {zero} ? {one} : ({v} < {zero} ? {lit(-1.0)} "
                f": ({v} == {zero} ? {zero} : {v})))")
    if kind == "Reciprocal":
        return f"({one} / {v})"
    if kind == "Round":
        # half to even whatever the rounding mode (nearbyint depends on it); floor(v + 0.5)
        # would round 0.49999997f up. v - floor(v) is exact except for v in (-0.5, 0), where
        # floor(v) is -1 (odd) and a tie rounds like a fraction above 0.5 anyway.
        fl = f"{f('floor')}({v})"
        return (f"({v} - {fl} > {half} || ({v} - {fl} == {half} && "
                f"{f('fmod')}({fl}, {lit(2.0)}) != {zero}) ? {fl} + {one} : {fl})")
    return None


POINTWISE_OPS = tuple(op for op, info in IR_OPS.items() if info.pointwise)


@kernel(*POINTWISE_OPS)
def unary(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    expr = activation_expr(node.op, "v", x.dtype, a.alpha, a.beta, a.approximate)
    return Kernel("unary.c.j2", dict(x=x, y=y, expr=expr), [x.name, y.name])


@kernel("Identity")
def identity(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    return Kernel("unary.c.j2", dict(x=x, y=y, expr="v"), [x.name, y.name])


def binary_expr(op: str, a: str, b: str, dtype: DType, out_dtype: DType, b_dtype=None):
    """(statements, expression) computing ``a op b``; statements may declare temporaries."""
    b_dtype = b_dtype or dtype
    t = dtype.c_type
    if op == "Pow":
        if dtype.is_float:
            return [], f"{math_fn(dtype, 'pow')}({a}, ({t}){b})"
        if b_dtype.is_float:
            # integer base, float exponent: compute in double, convert back saturating
            return ([f"const double p = pow((double){a}, (double){b});"],
                    saturate_expr("p", DType.FLOAT64, out_dtype))
        # integer ** integer: exact square-and-multiply, wrapping like numpy; a negative
        # exponent gives the truncated real result (0, 1 or -1)
        return ([f"const int64_t e = (int64_t){b};",
                 f"const double q = e < 0 ? pow((double){a}, (double)e) : 0.0;",
                 f"uint64_t p = 1, base = (uint64_t){a}, k;",
                 "for (k = e > 0 ? (uint64_t)e : 0u; k > 0; k >>= 1) {",
                 "    if (k & 1u) p *= base;",
                 "    base *= base;",
                 "}"],
                f"(e >= 0 ? ({t})p : {saturate_expr('q', DType.FLOAT64, out_dtype)})")
    if op in ("Min", "Max"):
        cmp = "<" if op == "Min" else ">"
        nan = f" || {a} != {a}" if dtype.is_float else ""
        return [], f"(({a} {cmp} {b}{nan}) ? {a} : {b})"
    if dtype.is_float:
        if op == "PRelu":
            return [], f"({a} < 0 ? {a} * {b} : {a})"
        sym = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}[op]
        return [], f"{a} {sym} {b}"
    if op in ("Add", "Sub", "Mul"):
        return [], wrap({"Add": "+", "Sub": "-", "Mul": "*"}[op], a, b, dtype)
    if op == "PRelu":
        return [], f"({a} < 0 ? {wrap('*', a, b, dtype)} : {a})" if dtype.is_signed else a
    if op == "Div":
        # C and ONNX both truncate; division by zero (undefined in C) gives 0, and
        # INT_MIN / -1 (overflow) wraps.
        if dtype.is_signed and dtype.itemsize >= 4:
            u = unsigned_ctype(dtype)
            return [], (f"({b} == 0 ? ({t})0 : ({b} == -1 ? ({t})(({u})0 - ({u}){a}) "
                        f": ({t})({a} / {b})))")
        return [], f"({b} == 0 ? ({t})0 : ({t})({a} / {b}))"
    raise KeyError(op)


@kernel("Add", "Sub", "Mul", "Div", "Pow", "Min", "Max", "PRelu")
def binary(ctx, node):
    a, b = ctx.view(node.inputs[0]), ctx.view(node.inputs[1])
    y = ctx.view(node.outputs[0])
    dims, (sa, sb, sy) = collapse_loops(y.shape, broadcast_strides(a.shape, y.shape),
                                        broadcast_strides(b.shape, y.shape), y.strides)
    pre, expr = binary_expr(node.op, "va", "vb", a.dtype, y.dtype, b.dtype)
    return Kernel("binary.c.j2", dict(a=a, b=b, y=y, dims=dims, sa=sa, sb=sb, sy=sy,
                                      pre=pre, expr=expr), [a.name, b.name, y.name])
