"""Portable C kernels: comparisons, logic, bitwise ops, BitShift, Mod, Where, IsNaN, IsInf
(see compiler/lowering/logic.py and ir/ops/logic.py for the semantics).

The binary ops share binary.c.j2 (numpy broadcasting, loops collapsed), the unary ones
unary.c.j2, Where has logic_where.c.j2. Bool tensors are uint8_t holding 0 or 1.
What C leaves undefined is decided explicitly, as the numpy references do: integer x mod 0
is 0 (and x mod -1 is computed as 0, so INT_MIN % -1 never runs), a shift amount outside
[0, bits) gives 0 (a right shift of a negative value: -1), a left shift is done in the
unsigned type (no signed overflow) and the right shift of a negative value as ~(~a >> s)
(no shift of a negative number).
"""
from __future__ import annotations

from ...ir import DType
from ..kernels import Kernel, broadcast_strides, collapse_loops, kernel
from .elementwise import math_fn, unsigned_ctype

COMPARE = {"Equal": "==", "Less": "<", "Greater": ">", "LessOrEqual": "<=",
           "GreaterOrEqual": ">="}
BITWISE = {"BitwiseAnd": "&", "BitwiseOr": "|", "BitwiseXor": "^"}


def _mod(a: str, b: str, dtype: DType, fmod: bool):
    """(statements, expression) of ONNX Mod on ``a`` and ``b`` of ``dtype``."""
    t = dtype.c_type
    if dtype.is_float:
        if fmod:
            return [], f"{math_fn(dtype, 'fmod')}({a}, {b})"
        # numpy's mod: C's fmod, moved into the divisor's sign; a zero result takes the
        # divisor's sign; x mod 0, Inf mod y and NaN stay NaN (fmod's).
        zero = "0.0f" if dtype == DType.FLOAT32 else "0.0"
        return ([f"const {t} r = {math_fn(dtype, 'fmod')}({a}, {b});"],
                f"(r != {zero} ? (({b} < {zero}) != (r < {zero}) ? r + {b} : r) "
                f": {math_fn(dtype, 'copysign')}({zero}, {b}))")
    if not dtype.is_signed:
        return [], f"({b} == 0 ? ({t})0 : ({t})({a} % {b}))"
    pre = [f"const {t} r = ({b} == 0 || {b} == -1) ? ({t})0 : ({t})({a} % {b});"]
    if fmod:
        return pre, "r"
    # r and b of opposite signs, |r| < |b|: r + b cannot overflow
    return pre, f"((r < 0) != ({b} < 0) && r != 0 ? ({t})(r + {b}) : r)"


def _bitshift(a: str, b: str, dtype: DType, b_dtype: DType, left: bool) -> str:
    """Expression of ``a << b`` / ``a >> b``; see the module docstring for the edge cases."""
    t, bits = dtype.c_type, dtype.itemsize * 8
    out = f"{b} >= {bits}" if not b_dtype.is_signed else f"({b} < 0 || {b} >= {bits})"
    if left:
        return f"({out} ? ({t})0 : ({t})(({unsigned_ctype(dtype)}){a} << {b}))"
    if not dtype.is_signed:
        return f"({out} ? ({t})0 : ({t})({a} >> {b}))"
    return (f"({out} ? ({t})({a} < 0 ? -1 : 0) "
            f": ({a} < 0 ? ({t})~(~{a} >> {b}) : ({t})({a} >> {b})))")


def logic_binary_expr(node, a: str, b: str, dtype: DType, b_dtype: DType):
    """(statements, expression) of a binary logic op over ``a`` and ``b``."""
    op = node.op
    if op in COMPARE:
        return [], f"{a} {COMPARE[op]} {b}"
    if op == "And":
        return [], f"{a} && {b}"
    if op == "Or":
        return [], f"{a} || {b}"
    if op == "Xor":
        return [], f"({a} != 0) != ({b} != 0)"
    if op in BITWISE:
        return [], f"{a} {BITWISE[op]} {b}"
    if op == "BitShift":
        return [], _bitshift(a, b, dtype, b_dtype, node.attrs.left)
    if op == "Mod":
        return _mod(a, b, dtype, node.attrs.fmod)
    raise KeyError(op)


@kernel("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor",
        "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitShift", "Mod")
def logic_binary(ctx, node):
    a, b = ctx.view(node.inputs[0]), ctx.view(node.inputs[1])
    y = ctx.view(node.outputs[0])
    dims, (sa, sb, sy) = collapse_loops(y.shape, broadcast_strides(a.shape, y.shape),
                                        broadcast_strides(b.shape, y.shape), y.strides)
    pre, expr = logic_binary_expr(node, "va", "vb", a.dtype, b.dtype)
    return Kernel("binary.c.j2", dict(a=a, b=b, y=y, dims=dims, sa=sa, sb=sb, sy=sy,
                                      pre=pre, expr=expr), [a.name, b.name, y.name])


def _isinf(v: str, dtype: DType, positive: bool, negative: bool) -> str:
    inf = "INFINITY" if dtype == DType.FLOAT32 else "(double)INFINITY"
    tests = ([f"{v} == {inf}"] if positive else []) + ([f"{v} == -{inf}"] if negative else [])
    return " || ".join(tests) or f"0 * ({v} != {v})"  # always 0, still reading v


@kernel("Not", "BitwiseNot", "IsNaN", "IsInf")
def logic_unary(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    expr = {"Not": "v == 0", "BitwiseNot": "~v", "IsNaN": "v != v"}.get(node.op)
    if node.op == "IsInf":
        expr = _isinf("v", x.dtype, node.attrs.positive, node.attrs.negative)
    return Kernel("unary.c.j2", dict(x=x, y=y, expr=f"({y.ctype})({expr})"), [x.name, y.name])


@kernel("Where")
def where(ctx, node):
    c, a, b = (ctx.view(i) for i in node.inputs)
    y = ctx.view(node.outputs[0])
    dims, (sc, sa, sb, sy) = collapse_loops(
        y.shape, *(broadcast_strides(t.shape, y.shape) for t in (c, a, b)), y.strides)
    return Kernel("logic_where.c.j2", dict(c=c, a=a, b=b, y=y, dims=dims, sc=sc, sa=sa, sb=sb,
                                           sy=sy), [c.name, a.name, b.name, y.name])
