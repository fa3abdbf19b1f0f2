"""Portable C kernels for the Reduce ops (see compiler/lowering/reduce.py).

The input's axes split into kept axes (walked in output order) and reduced axes; each group
is collapsed to as few loops as its strides allow, so a reduction over the last axes becomes
one outer and one inner loop. Each op is one accumulator (its type, initial value, step and
final expression) in reduce.c.j2, except ReduceLogSumExp (two passes: reduce_logsumexp.c.j2).
Integer sums, products and sums of squares accumulate in uint64_t, wrapping (no signed
overflow), and convert to the element type at the end.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ...ir.ops.reduce import highest_value, lowest_value
from ..codegen import c_literal
from ..kernels import Kernel, collapse_loops, kernel
from .elementwise import saturate_expr


def _index(names, strides) -> str:
    """C expression sum(name * stride), without the "* 1"s."""
    return " + ".join(n if s == 1 else f"{n} * {s}" for n, s in zip(names, strides))


def _loops(dims, strides):
    """(dims, strides) of one axis group, collapsed; a group of no axes is one loop of 1."""
    dims, (strides,) = collapse_loops(list(dims), list(strides))
    return list(zip(dims, strides))


def reduce_geometry(x, axes):
    """(context, count) of a reduction of the view x over axes: the loop variables, loop
    bounds and index expressions that reduce.c.j2 and qreduce_mean.c.j2 share, and the number
    of elements reduced into each output."""
    kept = [a for a in range(x.rank) if a not in axes]
    kept_dims = [x.shape[a] for a in kept]
    out_strides, acc = [], 1
    for d in reversed(kept_dims):
        out_strides.insert(0, acc)
        acc *= d
    outer_dims, (in_strides, out_strides) = collapse_loops(
        kept_dims, [x.strides[a] for a in kept], out_strides)
    inner = _loops([x.shape[a] for a in axes], [x.strides[a] for a in axes])
    count = int(np.prod([x.shape[a] for a in axes]))
    ov = [f"o{i}" for i in range(len(outer_dims))]
    iv = [f"r{i}" for i in range(len(inner))]
    return dict(outer_vars=ov, inner_vars=iv, outer_loops=list(zip(ov, outer_dims)),
                inner_loops=list(zip(iv, [d for d, _ in inner])),
                base=_index(ov, in_strides), out_index=_index(ov, out_strides),
                in_index=_index(iv, [s for _, s in inner])), count


def _accumulator(op: str, dt: DType):
    """(acc_t, init, step, result) of the Reduce ops added after Sum/Mean/Max."""
    if op == "ReduceMin":
        init = c_literal(highest_value(dt.np_dtype), dt)
        step = "if (v < acc || v != v) acc = v;" if dt.is_float else "if (v < acc) acc = v;"
        return dt.c_type, init, step, "acc"
    if dt.is_float:
        f = "f" if dt == DType.FLOAT32 else ""
        return dt.c_type, *{
            "ReduceProd": ("1", "acc *= v;", "acc"),
            "ReduceL1": ("0", f"acc += fabs{f}(v);", "acc"),
            "ReduceL2": ("0", "acc += v * v;", f"sqrt{f}(acc)"),
            "ReduceSumSquare": ("0", "acc += v * v;", "acc"),
            "ReduceLogSum": ("0", "acc += v;", f"log{f}(acc)"),
        }[op]
    if op == "ReduceL2":  # floor(sqrt(sum of squares)), in double
        return ("double", "0", "acc += (double)v * (double)v;",
                saturate_expr("sqrt(acc)", DType.FLOAT64, dt))
    abs_v = "(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v)" if dt.is_signed else "v"
    init, step = {
        "ReduceProd": ("1", "acc *= (uint64_t)v;"),
        "ReduceL1": ("0", f"acc += {abs_v};"),
        "ReduceSumSquare": ("0", "acc += (uint64_t)v * (uint64_t)v;"),
    }[op]
    return "uint64_t", init, step, f"({dt.c_type})acc" if dt != DType.UINT64 else "acc"


@kernel("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
        "ReduceL2", "ReduceSumSquare", "ReduceLogSum")
def reduce(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    geometry, count = reduce_geometry(x, node.attrs.axes)
    dt = x.dtype
    if node.op not in ("ReduceSum", "ReduceMean", "ReduceMax"):
        acc_t, init, step, result = _accumulator(node.op, dt)
        return Kernel("reduce.c.j2", dict(x=x, y=y, acc_t=acc_t, init=init, step=step,
                                          result=result, **geometry), [x.name, y.name])
    # integer sums accumulate in uint64_t, wrapping (no signed overflow), converted to the
    # output type like numpy at the end (a signed mean divides the two's-complement sum)
    acc_t = dt.c_type if dt.is_float or dt == DType.BOOL or node.op == "ReduceMax" else (
        "uint64_t")
    result = f"({dt.c_type})acc" if acc_t != dt.c_type else "acc"
    wide = "(int64_t)acc" if acc_t == "uint64_t" and dt.is_signed else "acc"
    if node.op == "ReduceMax":
        init = c_literal(lowest_value(dt.np_dtype), dt)
        step = "if (v > acc || v != v) acc = v;" if dt.is_float else "if (v > acc) acc = v;"
    else:
        init, step = "0", "acc += (uint64_t)v;" if acc_t == "uint64_t" else "acc += v;"
        if node.op == "ReduceMean":
            if count == 0:
                result = "NAN" if dt.is_float else "0"
            elif acc_t == "uint64_t":
                mean = f"{wide} / ({'int64_t' if dt.is_signed else 'uint64_t'}){count}"
                result = f"({dt.c_type})({mean})"
            else:
                result = f"acc / ({acc_t}){count}"
    return Kernel("reduce.c.j2", dict(x=x, y=y, acc_t=acc_t, init=init, step=step,
                                      result=result, **geometry), [x.name, y.name])


@kernel("ReduceLogSumExp")
def reduce_logsumexp(ctx, node):
    """log(sum(exp(v - m))) + m with m the largest finite value (0 when there is none), so
    large inputs do not overflow exp; empty reductions give log(0) = -inf."""
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    geometry, _ = reduce_geometry(x, node.attrs.axes)
    f = "f" if x.dtype == DType.FLOAT32 else ""
    return Kernel("reduce_logsumexp.c.j2", dict(x=x, y=y, f=f, **geometry), [x.name, y.name])
