"""IR ops (attribute records and facts): Cast, including float16, bfloat16 and the 8/4/2-bit
float and integer types (CastLike lowers to it: compiler/lowering/cast.py).

The numpy reference is the semantics of the C kernel (backends/generic/cast.py), which is
onnx's reference implementation (onnx.reference.ops.op_cast):
- a narrow float source is widened to float32 first (exact);
- to float16/bfloat16/float8/float4: round to nearest even from float32 (a double source goes
  through float32, as onnx's reference and ml_dtypes do, except to float16, which numpy rounds
  from double directly); float8 with ``saturate`` clamps to the largest finite value
  (infinities included), without it overflow is Inf (E5M2) or NaN; float16 and bfloat16
  overflow to Inf, float4 always saturates; float8e8m0 follows ``round_mode``;
- to int4/uint4/int2/uint2: truncate toward zero and wrap to the type's bits (NaN, Inf and
  |x| >= 2^63 give 0, whose residue they are), as ml_dtypes does; an ONNX tensor of these
  types is held one value a byte as int8/uint8 (compiler/lowering/cast.py,
  ``unpack_sub_byte_types``), and its Cast is one to int8/uint8 with ``bits`` set;
- to bool: x != 0; otherwise numpy's astype (float -> integer saturates in C)."""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from .. import DType
from ..registry import ir_op

# float8 types whose ``saturate`` attribute applies (float8e8m0 has its own rule)
SATURATING = (DType.FLOAT8E4M3FN, DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2, DType.FLOAT8E5M2FNUZ)


@dataclass(frozen=True)
class CastAttrs:
    to: DType
    saturate: bool = True
    round_mode: str = "up"  # float8e8m0 only: "up", "down" or "nearest"
    bits: int = 0  # to int8/uint8 holding an ONNX int4/uint4/int2/uint2: wrap to these bits


# (storage type, bits) -> the sub-byte type whose values a Cast with ``bits`` produces
SUB_BYTE = {(DType.INT8, 4): DType.INT4, (DType.UINT8, 4): DType.UINT4,
            (DType.INT8, 2): DType.INT2, (DType.UINT8, 2): DType.UINT2}


def wrap_bits(x: np.ndarray, dtype: DType) -> np.ndarray:
    """Values of ``x`` truncated and wrapped to the sub-byte integer type ``dtype``."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(x) & (np.abs(x) < 2.0 ** 63)
            v = np.where(ok, np.trunc(np.where(ok, x, 0)), 0).astype(np.int64)
    else:
        v = x.astype(np.int64)
    v = v & ((1 << dtype.bits) - 1)
    if dtype.is_signed:
        v = np.where(v >= 1 << (dtype.bits - 1), v - (1 << dtype.bits), v)
    return v.astype(dtype.np_dtype)


def cast_array(x: np.ndarray, attrs: CastAttrs) -> np.ndarray:
    """numpy semantics of Cast (the module docstring)."""
    from onnx.numpy_helper import to_float8e8m0
    x = np.asarray(x)
    to = attrs.to
    if x.dtype.kind not in "biuf" or (x.dtype.kind == "f" and x.dtype.itemsize < 4):
        x = x.astype(np.float32)  # a narrow float: exact
    if to.is_narrow_float:
        if not (to == DType.FLOAT16 and x.dtype == np.float64):
            x = x.astype(np.float32)
        if to == DType.FLOAT8E8M0:
            return to_float8e8m0(x, attrs.saturate, attrs.round_mode)
        if to in SATURATING and attrs.saturate:
            info = ml_dtypes.finfo(to.np_dtype)
            x = np.clip(x, np.float32(info.min), np.float32(info.max))
        return x.astype(to.np_dtype)
    if to.packed:
        return wrap_bits(x, to)
    if attrs.bits:
        return wrap_bits(x, SUB_BYTE[to, attrs.bits]).astype(to.np_dtype)
    if to == DType.BOOL:
        return x != 0
    if x.dtype.kind == "f" and not to.is_float:  # saturating, NaN -> 0, as the C kernel
        info = np.iinfo(to.np_dtype)
        with np.errstate(invalid="ignore"):
            hi, lo = x >= float(info.max) + 1.0, x <= float(info.min)
            v = np.where(hi | lo | np.isnan(x), 0, x).astype(to.np_dtype)
        return np.where(hi, info.max, np.where(lo, info.min, v)).astype(to.np_dtype)
    return x.astype(to.np_dtype)


ir_op("Cast", elementwise=False, reference=lambda n, xs: [cast_array(xs[0], n.attrs)])
