"""Element types and tensor types of the edgecc IR.

A ``TensorType`` is fully static after the front end: a dtype, a shape of
non-negative ints, and an optional typed quantization record.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from math import prod
from typing import Optional, Tuple

import numpy as np
from onnx import TensorProto


class DType(enum.Enum):
    """Element types the C backends can store. Value: (C type, numpy dtype, ONNX enum)."""

    FLOAT32 = ("float", np.float32, TensorProto.FLOAT)
    FLOAT64 = ("double", np.float64, TensorProto.DOUBLE)
    INT8 = ("int8_t", np.int8, TensorProto.INT8)
    INT16 = ("int16_t", np.int16, TensorProto.INT16)
    INT32 = ("int32_t", np.int32, TensorProto.INT32)
    INT64 = ("int64_t", np.int64, TensorProto.INT64)
    UINT8 = ("uint8_t", np.uint8, TensorProto.UINT8)
    UINT16 = ("uint16_t", np.uint16, TensorProto.UINT16)
    UINT32 = ("uint32_t", np.uint32, TensorProto.UINT32)
    UINT64 = ("uint64_t", np.uint64, TensorProto.UINT64)
    BOOL = ("uint8_t", np.bool_, TensorProto.BOOL)

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
    def itemsize(self) -> int:
        return self.np_dtype.itemsize

    @property
    def is_float(self) -> bool:
        return self in (DType.FLOAT32, DType.FLOAT64)

    @property
    def is_signed(self) -> bool:
        return self.is_float or self in (DType.INT8, DType.INT16, DType.INT32, DType.INT64)

    @classmethod
    def from_onnx(cls, elem_type: int) -> "DType":
        for d in cls:
            if d.onnx_type == elem_type:
                return d
        raise KeyError(TensorProto.DataType.Name(elem_type))

    @classmethod
    def from_numpy(cls, dtype) -> "DType":
        dtype = np.dtype(dtype)
        for d in cls:
            if d.np_dtype == dtype:
                return d
        raise KeyError(str(dtype))


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization ``real = scale * (q - zero_point)``.

    Per tensor when ``axis`` is None (one scale and zero point), else per channel along ``axis``.
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
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(int(d) for d in shape), self.quant)

    def __str__(self) -> str:
        return f"{self.dtype.name.lower()}[{'x'.join(map(str, self.shape))}]"
