"""Sub-byte element types in the IR (issue 10): bit widths, packed storage sizes (bit planes
along the last axis, edgecc/ir/lowbit.py), value ranges, and what the front end still refuses."""
import numpy as np
import pytest
from onnx import TensorProto

from edgecc.ir import DType, Graph, Node, TensorType
from edgecc.ir.ops.cast import CastAttrs
from edgecc.passes.memory_plan import plan_memory


@pytest.mark.parametrize("dtype,bits,shape,nbytes,lo,hi", [
    (DType.INT8, 8, (3, 5), 15, -128, 127),
    (DType.UINT8, 8, (3, 5), 15, 0, 255),
    (DType.INT4, 4, (3, 5), 12, -8, 7),      # 3 rows x 4 planes x 1 byte
    (DType.UINT4, 4, (2, 4), 8, 0, 15),
    (DType.INT2, 2, (1, 9), 4, -2, 1),       # 9 elements: 2 bytes a plane
    (DType.UINT2, 2, (4,), 2, 0, 3),
    (DType.BINARY, 1, (1, 9), 2, -1, 1),
    (DType.INT32, 32, (7,), 28, -2**31, 2**31 - 1),
])
def test_bits_packed_sizes_and_ranges(dtype, bits, shape, nbytes, lo, hi):
    t = TensorType(dtype, shape)
    assert dtype.bits == bits and dtype.packed == (bits < 8)
    assert t.nbytes == nbytes  # worked out by hand in the table
    assert dtype.int_range == (lo, hi)
    assert dtype.c_type == ("uint8_t" if dtype.packed else dtype.c_type)


def test_numpy_and_onnx_mappings_keep_byte_types():
    assert DType.from_numpy(np.int8) is DType.INT8 and DType.from_numpy(np.uint8) is DType.UINT8
    with pytest.raises(KeyError):
        DType.from_onnx(TensorProto.INT4)  # the front end refuses 4-bit tensors for now
    assert DType.from_onnx(TensorProto.INT4, allow_packed=True) is DType.INT4
    assert DType.from_onnx(TensorProto.UINT4, allow_packed=True) is DType.UINT4
    assert DType.from_onnx(TensorProto.INT8) is DType.INT8


def test_memory_plan_counts_packed_bytes():
    """A packed tensor takes its planes' bytes of the arena: 4 planes x 13 bytes for int4[1x100]."""
    g = Graph("g", [], ["x"], ["z"], {"x": TensorType(DType.FLOAT32, (1, 100)),
                                      "y": TensorType(DType.INT4, (1, 100)),
                                      "z": TensorType(DType.FLOAT32, (1, 100))}, {})
    g.nodes = [Node("Cast", ("x",), ("y",), CastAttrs(DType.INT4), "a"),
               Node("Cast", ("y",), ("z",), CastAttrs(DType.FLOAT32), "b")]
    plan = plan_memory(g)
    assert plan.arena_bytes >= 50 + 400 and plan.arena_bytes < 100 + 400 + 64
