"""Portable C kernel for Resize: gather through per-axis tables, blend with per-axis weights.

The index and weight tables come from compiler/lowering/resize.py (``axis_taps``); this module
only lays them out for the template: input offsets (index * input stride) as int32, weights
in the accumulator type, and a flag per output index where tf_crop_and_resize extrapolates.
Runs of axes that are not resized are merged into one plain loop.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ...ir.ops.resize import axis_taps
from ..codegen import c_literal
from ..kernels import Kernel, kernel
from .elementwise import saturate_expr


@kernel("Resize")
def resize(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    wide = x.dtype in (DType.FLOAT64, DType.INT32, DType.UINT32, DType.INT64, DType.UINT64)
    acc = DType.FLOAT64 if wide else DType.FLOAT32
    loops, tables, outside = [], {}, []
    for axis in range(x.rank):
        taps = axis_taps(a, axis, x.shape[axis])
        var = f"i{axis}"
        if taps is None:
            if loops and loops[-1]["taps"] == 0:  # merge with the previous unresized axis
                loops[-1]["extent"] *= y.shape[axis]
                loops[-1]["stride"] = x.strides[axis]
            else:
                loops.append(dict(var=var, extent=y.shape[axis], stride=x.strides[axis],
                                  taps=0))
            continue
        n_taps = taps.index.shape[1]
        loops.append(dict(var=var, extent=y.shape[axis], taps=n_taps, axis=axis))
        tables[f"off{axis}"] = (taps.index * x.strides[axis]).astype(np.int32).reshape(-1)
        if a.mode != "nearest":
            tables[f"w{axis}"] = taps.weight.astype(acc.np_dtype).reshape(-1)
        if taps.outside is not None and taps.outside.any():
            tables[f"out{axis}"] = taps.outside.astype(np.uint8)
            outside.append(axis)
    if x.dtype.is_float:
        store, fill, round_fn = "acc", c_literal(a.extrapolation_value, x.dtype), ""
    else:  # round half to even, then saturate, as onnx's reference does
        info = np.iinfo(x.dtype.np_dtype)
        store, round_fn = saturate_expr("acc", acc, x.dtype), "rint" if wide else "rintf"
        fill = c_literal(int(np.clip(np.round(a.extrapolation_value), info.min, info.max)),
                         x.dtype)
    return Kernel("resize.c.j2", dict(
        x=x, y=y, loops=loops, outside=outside, nearest=a.mode == "nearest",
        acc_t=acc.c_type, store=store, round_fn=round_fn, fill=fill,
    ), [x.name, y.name], tables=tables)
