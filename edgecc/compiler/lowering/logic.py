"""ONNX lowerings: comparisons, logic, bitwise ops, BitShift, Mod, Where, IsNaN and IsInf.

Each lowers to the IR op of the same name (ir/ops/logic.py) after checking its element types:
the kernels know float, double, the 8- to 64-bit integers and bool, and a type added to the IR
later is refused here until they handle it. Sign is a unary op (lowering/elementwise.py).
"""
from __future__ import annotations

from ...ir import DType
from ...ir.ops.logic import BitShiftAttrs, IsInfAttrs, ModAttrs
from ..registry import lowering

INTEGERS = (DType.INT8, DType.INT16, DType.INT32, DType.INT64, DType.UINT8, DType.UINT16,
            DType.UINT32, DType.UINT64)
FLOATS = (DType.FLOAT32, DType.FLOAT64)
NUMERIC = FLOATS + INTEGERS
KINDS = {"numeric": NUMERIC, "numeric or bool": NUMERIC + (DType.BOOL,), "integer": INTEGERS,
         "bool": (DType.BOOL,), "float": FLOATS}


def _check(ctx, names, kind: str) -> None:
    """Refuse inputs whose element type is not of ``kind`` (a key of KINDS)."""
    for name in names:
        dtype = ctx.type(name).dtype
        if dtype not in KINDS[kind]:
            raise ctx.error(f"{ctx.node.op_type} on {dtype.name.lower()} is not supported "
                            f"({kind} inputs)")


def _binary(ctx, node, kind: str, attrs=None) -> None:
    if ctx.opset < 7 and ctx.attr("broadcast", 0):
        raise ctx.error("legacy broadcast attribute (opset < 7) is not supported")
    _check(ctx, node.input[:2], kind)
    ctx.emit(node.op_type, [node.input[0], node.input[1]], [node.output[0]], attrs)


@lowering("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")
def lower_compare(ctx, node):
    _binary(ctx, node, "numeric or bool")


@lowering("And", "Or", "Xor")
def lower_logic(ctx, node):
    _binary(ctx, node, "bool")


@lowering("BitwiseAnd", "BitwiseOr", "BitwiseXor")
def lower_bitwise(ctx, node):
    _binary(ctx, node, "integer")


@lowering("BitShift")
def lower_bitshift(ctx, node):
    direction = ctx.attr("direction", "")
    if direction not in ("LEFT", "RIGHT"):
        raise ctx.error(f"direction must be LEFT or RIGHT, not '{direction}'")
    _binary(ctx, node, "integer", BitShiftAttrs(left=direction == "LEFT"))


@lowering("Mod")
def lower_mod(ctx, node):
    _binary(ctx, node, "numeric", ModAttrs(fmod=bool(ctx.attr("fmod", 0))))


@lowering("Not", "BitwiseNot")
def lower_not(ctx, node):
    _check(ctx, node.input[:1], "bool" if node.op_type == "Not" else "integer")
    ctx.emit(node.op_type, [node.input[0]], [node.output[0]])


@lowering("IsNaN", "IsInf")
def lower_isnan(ctx, node):
    _check(ctx, node.input[:1], "float")
    attrs = None
    if node.op_type == "IsInf":
        attrs = IsInfAttrs(bool(ctx.attr("detect_positive", 1)),
                           bool(ctx.attr("detect_negative", 1)))
    ctx.emit(node.op_type, [node.input[0]], [node.output[0]], attrs)


@lowering("Where")
def lower_where(ctx, node):
    _check(ctx, node.input[:1], "bool")
    _check(ctx, node.input[1:3], "numeric or bool")
    ctx.emit("Where", list(node.input[:3]), [node.output[0]])
