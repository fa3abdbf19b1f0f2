"""Element types and tensor types of the edgecc IR.

A ``TensorType`` is fully static after the front end: a dtype, a shape of
non-negative ints, and an optional typed quantization record.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from math import prod
from typing import Optional, Tuple

import ml_dtypes  # onnx's own dependency: numpy types of bfloat16, float8, float4
import numpy as np
from onnx import TensorProto


class DType(enum.Enum):
    """Element types of the IR. Value: (C storage type, numpy dtype of one unpacked element,
    ONNX enum or None, bits per element). Sub-byte types (int4, uint4, int2, uint2, binary)
    are stored as bit planes along the last axis (edgecc/ir/lowbit.py: each row of the last
    axis as ``bits`` planes of ceil(C / 8) bytes, ``storage_bytes``); binary holds -1/+1 as
    bit 0/1 (XNOR-Net's sign convention).

    The narrow float types (float16, bfloat16, float8, float4: ``is_narrow_float``) are
    storage types: their C storage holds the format's bit pattern (float4: one code a byte,
    in the low 4 bits, as ml_dtypes holds it) and only Cast converts to and from them
    (backends/generic/cast.py); the front end computes everything else in float32
    (compiler/lowering/cast.py, ``widen_narrow_types``)."""

    FLOAT32 = ("float", np.float32, TensorProto.FLOAT, 32)
    FLOAT64 = ("double", np.float64, TensorProto.DOUBLE, 64)
    INT8 = ("int8_t", np.int8, TensorProto.INT8, 8)
    INT16 = ("int16_t", np.int16, TensorProto.INT16, 16)
    INT32 = ("int32_t", np.int32, TensorProto.INT32, 32)
    INT64 = ("int64_t", np.int64, TensorProto.INT64, 64)
    UINT8 = ("uint8_t", np.uint8, TensorProto.UINT8, 8)
    UINT16 = ("uint16_t", np.uint16, TensorProto.UINT16, 16)
    UINT32 = ("uint32_t", np.uint32, TensorProto.UINT32, 32)
    UINT64 = ("uint64_t", np.uint64, TensorProto.UINT64, 64)
    BOOL = ("uint8_t", np.bool_, TensorProto.BOOL, 8)
    INT4 = ("uint8_t", np.int8, TensorProto.INT4, 4)
    UINT4 = ("uint8_t", np.uint8, TensorProto.UINT4, 4)
    INT2 = ("uint8_t", np.int8, getattr(TensorProto, "INT2", None), 2)
    UINT2 = ("uint8_t", np.uint8, getattr(TensorProto, "UINT2", None), 2)
    BINARY = ("uint8_t", np.int8, None, 1)
    FLOAT16 = ("uint16_t", np.float16, TensorProto.FLOAT16, 16)
    BFLOAT16 = ("uint16_t", ml_dtypes.bfloat16, TensorProto.BFLOAT16, 16)
    FLOAT8E4M3FN = ("uint8_t", ml_dtypes.float8_e4m3fn, TensorProto.FLOAT8E4M3FN, 8)
    FLOAT8E4M3FNUZ = ("uint8_t", ml_dtypes.float8_e4m3fnuz, TensorProto.FLOAT8E4M3FNUZ, 8)
    FLOAT8E5M2 = ("uint8_t", ml_dtypes.float8_e5m2, TensorProto.FLOAT8E5M2, 8)
    FLOAT8E5M2FNUZ = ("uint8_t", ml_dtypes.float8_e5m2fnuz, TensorProto.FLOAT8E5M2FNUZ, 8)
    FLOAT8E8M0 = ("uint8_t", ml_dtypes.float8_e8m0fnu, TensorProto.FLOAT8E8M0, 8)
    FLOAT4E2M1 = ("uint8_t", ml_dtypes.float4_e2m1fn, TensorProto.FLOAT4E2M1, 8)

    @property
    def c_type(self) -> str:
        return self.value[0]

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.value[1])

    @property
    def onnx_type(self) -> int:
        return self.value[2]

    @property
    def bits(self) -> int:
        return self.value[3]

    @property
    def packed(self) -> bool:
        """Stored several elements to a byte (the sub-byte types)."""
        return self.bits < 8

    @property
    def itemsize(self) -> int:
        """Bytes of one unpacked element (numpy's); see storage_bytes for a tensor's size."""
        return self.np_dtype.itemsize

    def storage_bytes(self, shape) -> int:
        """Bytes of a tensor of this type and ``shape`` (sub-byte types as bit planes)."""
        if self.packed:
            from .lowbit import packed_bytes
            return packed_bytes(shape, self.bits)
        return int(prod(shape)) * self.itemsize

    @property
    def is_float(self) -> bool:
        return self in (DType.FLOAT32, DType.FLOAT64)

    @property
    def is_narrow_float(self) -> bool:
        """A float storage type computed in float32 (float16, bfloat16, float8, float4)."""
        return self.np_dtype.kind in "fV" and not self.is_float

    @property
    def is_signed(self) -> bool:
        return self.is_float or self in (DType.INT8, DType.INT16, DType.INT32, DType.INT64,
                                         DType.INT4, DType.INT2, DType.BINARY)

    @property
    def int_range(self) -> Tuple[int, int]:
        """The smallest and largest integer an element holds (binary: -1 and +1)."""
        if self == DType.BINARY:
            return -1, 1
        if self.is_signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1

    @classmethod
    def from_onnx(cls, elem_type: int, allow_packed: bool = False) -> "DType":
        """The DType of an ONNX element type. Sub-byte types only with ``allow_packed`` (the
        front end refuses them until a lowering handles them)."""
        for d in cls:
            if d.onnx_type == elem_type and (allow_packed or not d.packed):
                return d
        raise KeyError(TensorProto.DataType.Name(elem_type))

    @classmethod
    def from_numpy(cls, dtype) -> "DType":
        dtype = np.dtype(dtype)
        for d in cls:
            if d.np_dtype == dtype and not d.packed:
                return d
        raise KeyError(str(dtype))


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization ``real = scale * (q - zero_point)``.

    Per tensor when ``axis`` is None (one scale and zero point), else per channel along ``axis``.
    ``bits``: the integer width the values use (8 for int8, 4 for int4...; 32 for int32 bias).
    """

    scale: Tuple[float, ...]
    zero_point: Tuple[int, ...]
    axis: Optional[int] = None
    bits: int = 8


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: Tuple[int, ...]
    quant: Optional[QuantParams] = None

    @property
    def numel(self) -> int:
        return int(prod(self.shape))

    @property
    def planes(self) -> int:
        """Bit planes of a packed (sub-byte) tensor: the quantization's bits when it has one
        (a 3-bit code in an int4 type takes 3 planes), else the type's."""
        if self.dtype.packed and self.quant is not None and self.dtype != DType.BINARY:
            return min(self.quant.bits, self.dtype.bits)
        return self.dtype.bits

    @property
    def nbytes(self) -> int:
        """Bytes of storage (sub-byte types as bit planes, edgecc/ir/lowbit.py)."""
        if self.dtype.packed:
            from .lowbit import packed_bytes
            return packed_bytes(self.shape, self.planes)
        return self.dtype.storage_bytes(self.shape)

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(int(d) for d in shape), self.quant)

    def __str__(self) -> str:
        return f"{self.dtype.name.lower()}[{'x'.join(map(str, self.shape))}]"
