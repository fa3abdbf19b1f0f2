"""Portable C kernels: Cast (and CastLike, which lowers to it), including float16, bfloat16
and the 8/4-bit float types (compiler/lowering/cast.py, ir/ops/cast.py), and the ONNX
int4/uint4/int2/uint2 values held one a byte (a Cast with ``bits``:
templates/cast_wrap_bits.c.j2, cast_trunc_u64.c.j2).

A narrow float is stored as its code (uint16_t / uint8_t) and converted by the helpers in
templates/cast_*.c.j2, written from the formats' definitions: decoding is exact into float,
encoding rounds to nearest even from float (or from double for double -> float16, which numpy
rounds once), with the ONNX Cast rules for overflow, Inf and NaN (the ``saturate`` attribute
for float8). Other sources reach a narrow float through float, as onnx's reference does.
"""
from __future__ import annotations

from ...ir import DType
from ...ir.ops.cast import SATURATING
from ..kernels import Kernel, kernel
from .elementwise import saturate_expr

IEEE, FN, FNUZ, FINITE = 0, 1, 2, 3
# narrow float -> (exponent bits, fraction bits, exponent bias, kind) (cast_fp_round.c.j2)
FORMATS = {
    DType.FLOAT16: (5, 10, 15, IEEE),
    DType.BFLOAT16: (8, 7, 127, IEEE),
    DType.FLOAT8E4M3FN: (4, 3, 7, FN),
    DType.FLOAT8E4M3FNUZ: (4, 3, 8, FNUZ),
    DType.FLOAT8E5M2: (5, 2, 15, IEEE),
    DType.FLOAT8E5M2FNUZ: (5, 2, 16, FNUZ),
    DType.FLOAT4E2M1: (2, 1, 1, FINITE),
}
ROUND_MODES = {"up": 0, "down": 1, "nearest": 2}


def _fmt(dtype: DType) -> str:
    return ", ".join(map(str, FORMATS[dtype]))


def cast_expr(v: str, src: DType, dst: DType, saturate: bool = True,
              round_mode: str = "up", needs: list = None, bits: int = 0) -> str:
    """C expression converting ``v`` (type ``src``) to ``dst`` (with ``bits``: to that many
    bits of ``dst``, wrapped); the helper templates it calls are appended to ``needs``."""
    needs = [] if needs is None else needs
    if bits:
        return _wrap_expr(cast_expr(v, src, DType.FLOAT32, needs=needs)
                          if src.is_narrow_float else v, src, dst, bits, needs)
    if src == dst:
        return v
    if src.is_narrow_float:  # decode, exactly, to float
        if src == DType.FLOAT8E8M0:
            needs.append("cast_e8m0_to_float.c.j2")
            v = f"edgecc_e8m0_to_float({v})"
        else:
            needs.append("cast_fp_to_float.c.j2")
            v = f"edgecc_fp_to_float({v}, {', '.join(map(str, FORMATS[src][:4]))})"
        src = DType.FLOAT32
        if dst == src:
            return v
    if dst.is_narrow_float:
        if dst == DType.FLOAT8E8M0:
            needs.append("cast_e8m0_from_float.c.j2")
            return (f"(uint8_t)edgecc_e8m0_from_float((float)({v}), "
                    f"{ROUND_MODES[round_mode]}, {int(saturate)})")
        sat = int(bool(saturate) and dst in SATURATING)
        needs.append("cast_fp_round.c.j2")
        if src == DType.FLOAT64 and dst == DType.FLOAT16:
            needs.append("cast_fp_from_double.c.j2")
            call = f"edgecc_fp_from_double({v}, {_fmt(dst)}, {sat})"
        else:
            needs.append("cast_fp_from_float.c.j2")
            call = f"edgecc_fp_from_float((float)({v}), {_fmt(dst)}, {sat})"
        return f"({dst.c_type}){call}"
    if dst == DType.BOOL:
        return f"(uint8_t)({v} != 0)"
    if src.is_float and not dst.is_float:
        return saturate_expr(v, src, dst)
    return f"({dst.c_type})({v})"


def _wrap_expr(v: str, src: DType, dst: DType, bits: int, needs: list) -> str:
    """``v`` (a float32/64 or integer ``src``) truncated and wrapped to ``bits`` of ``dst``."""
    u = f"(uint64_t)({v})"
    if src.is_float or src.is_narrow_float:
        needs.append("cast_trunc_u64.c.j2")
        u = f"edgecc_trunc_u64((double)({v}))"
    needs.append("cast_wrap_bits.c.j2")
    return f"({dst.c_type})edgecc_wrap_bits({u}, {bits}, {int(dst.is_signed)})"


@kernel("Cast")
def cast(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    if x.dtype.packed or y.dtype.packed:
        return None
    a = node.attrs
    needs = []
    expr = cast_expr("v", x.dtype, y.dtype, a.saturate, a.round_mode, needs, a.bits)
    return Kernel("unary.c.j2", dict(x=x, y=y, expr=expr), [x.name, y.name],
                  needs=tuple(dict.fromkeys(needs)))
