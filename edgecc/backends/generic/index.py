"""Portable C kernels: index ops: ArgMax/ArgMin, Hardmax, TopK, GatherElements/GatherND,
ScatterElements/ScatterND (semantics: ir/ops/index.py).

ArgMax/ArgMin/Hardmax and TopK see the input as [outer, dim, inner] around the axis and walk
each (outer, inner) line once; TopK keeps the line's best k in its outputs by insertion (the
new element goes after equal ones, so ties keep the lower index first). The element-wise
gathers and scatters walk the indices tensor in order; the ND ones walk its index tuples,
each selecting a contiguous slice. Negative indices are wrapped at run time; an index still
outside its axis reads element 0 of it (gathers) or is skipped (scatters).
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ...ir import DType
from ..kernels import Kernel, collapse_loops, kernel
from .elementwise import wrap


def _mul(var: str, n: int) -> str:
    """``var * n`` without a "* 1" (var parenthesized when it is a sum)."""
    if n == 1:
        return var
    return f"({var}) * {n}" if " " in var else f"{var} * {n}"


def _sum(terms: Sequence[str]) -> str:
    return " + ".join(t for t in terms if t) or "0"


def _line_base(dim: int, inner: int) -> str:
    """Offset of line l's first element in a [outer, dim, inner] tensor (line l = o * inner
    + i walks the outer and inner axes)."""
    if inner == 1:
        return _mul("l", dim)
    return f"(l / {inner}) * {dim * inner} + l % {inner}"


def _split(shape, axis: int, flatten: bool = False):
    """(outer, dim, inner) element counts around ``axis`` (flatten: dim spans the axes from
    ``axis`` on)."""
    outer = int(np.prod(shape[:axis]))
    if flatten:
        return outer, int(np.prod(shape[axis:])), 1
    return outer, shape[axis], int(np.prod(shape[axis + 1:]))


def _arg_better(cmp: str, dtype: DType, last: bool) -> str:
    """C condition "v replaces best" of ArgMax (cmp ">") / ArgMin ("<"), numpy's: a NaN beats
    every number and ties keep the first index, or the last with select_last_index."""
    cmp += "=" if last else ""
    if not dtype.is_float:
        return f"v {cmp} best"
    return f"v {cmp} best || v != v" if last else f"v {cmp} best || (v != v && best == best)"


def _topk_better(largest: bool, v: str, w: str, dtype: DType) -> str:
    """C condition "v ranks before w" in TopK's order: NaN is larger than every number."""
    if not dtype.is_float:
        return f"{v} {'>' if largest else '<'} {w}"
    if largest:
        return f"{v} > {w} || ({v} != {v} && {w} == {w})"
    return f"{v} < {w} || ({w} != {w} && {v} == {v})"


@kernel("ArgMax", "ArgMin", "Hardmax")
def arg_extreme(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    hardmax = node.op == "Hardmax"
    outer, dim, inner = _split(x.shape, a.axis, hardmax and a.flatten)
    better = _arg_better("<" if node.op == "ArgMin" else ">", x.dtype,
                         not hardmax and a.select_last_index)
    return Kernel("index_arg.c.j2", dict(
        x=x, y=y, outer=outer, dim=dim, inner=inner, better=better, hardmax=hardmax,
        what={"ArgMax": "largest", "ArgMin": "smallest", "Hardmax": "largest"}[node.op],
        lines=outer * inner, in_base=_line_base(dim, inner), step=_mul("j", inner)),
        [x.name, y.name])


@kernel("TopK")
def topk(ctx, node):
    x, y, yi = (ctx.view(n) for n in (node.inputs[0], node.outputs[0], node.outputs[1]))
    a = node.attrs
    outer, dim, inner = _split(x.shape, a.axis)
    return Kernel("index_topk.c.j2", dict(
        x=x, y=y, yi=yi, outer=outer, dim=dim, inner=inner, k=a.k,
        what="largest" if a.largest else "smallest",
        lines=outer * inner, in_base=_line_base(dim, inner), out_base=_line_base(a.k, inner),
        j_off=_mul("j", inner), q_off=_mul("q", inner), prev_off=_mul("q - 1", inner),
        beats_last=_topk_better(a.largest, "v", f"vals[{_mul(str(a.k - 1), inner)}]", x.dtype),
        beats_prev=_topk_better(a.largest, "v", f"vals[{_mul('q - 1', inner)}]", x.dtype)),
        [x.name, y.name, yi.name])


def _update(reduction: str, target: str, value: str, dtype: DType) -> str:
    """C statement applying a scatter update ``value`` to ``target``."""
    if reduction == "none":
        return f"{target} = {value};"
    if reduction in ("add", "mul"):
        sign = "+" if reduction == "add" else "*"
        if dtype.is_float:
            return f"{target} = {target} {sign} {value};"
        return f"{target} = {wrap(sign, target, value, dtype)};"
    cond = f"{value} {'>' if reduction == 'max' else '<'} {target}"
    if dtype.is_float:  # numpy's maximum/minimum: a NaN on either side gives NaN
        cond += f" || {value} != {value}"
    return f"if ({cond}) {target} = {value};"


def _loop_vars(dims) -> List[str]:
    return [f"i{k}" for k in range(len(dims))]


@kernel("GatherElements", "ScatterElements")
def elements(ctx, node):
    scatter = node.op == "ScatterElements"
    x, idx = ctx.view(node.inputs[0]), ctx.view(node.inputs[1])
    y = ctx.view(node.outputs[0])
    axis = node.attrs.axis
    x_strides = list(x.strides)
    axis_stride = x_strides[axis]
    x_strides[axis] = 0  # the axis's offset comes from the index
    dims, (_, strides) = collapse_loops(list(idx.shape), list(idx.strides), x_strides)
    names = _loop_vars(dims)
    offset = _sum([_mul(v, s) for v, s in zip(names, strides) if s]
                  + [_mul("(int32_t)v", axis_stride)])
    target = f"{'y' if scatter else 'x'}[{offset}]"
    context = dict(x=x, idx=idx, y=y, scatter=scatter, loops=list(zip(names, dims)),
                   dim=x.shape[axis], target=target, numel=x.numel)
    args = [x.name, idx.name]
    if scatter:
        u = ctx.view(node.inputs[2])
        context.update(u=u, update=_update(node.attrs.reduction, target, "u[n]", x.dtype))
        args.append(u.name)
    return Kernel("index_elements.c.j2", context, args + [y.name])


@kernel("GatherND", "ScatterND")
def nd(ctx, node):
    scatter = node.op == "ScatterND"
    x, idx = ctx.view(node.inputs[0]), ctx.view(node.inputs[1])
    y = ctx.view(node.outputs[0])
    b = 0 if scatter else node.attrs.batch_dims
    m = idx.shape[-1]
    nb = int(np.prod(x.shape[:b]))
    nj = int(np.prod(idx.shape[b:-1]))
    inner = int(np.prod(x.shape[b + m:]))
    axes = [(k, x.shape[b + k], x.strides[b + k]) for k in range(m)]
    context = dict(x=x, idx=idx, y=y, scatter=scatter, nb=nb, nj=nj, m=m, inner=inner,
                   axes=axes, batch_stride=int(np.prod(x.shape[b:])), numel=x.numel)
    args = [x.name, idx.name]
    if scatter:
        u = ctx.view(node.inputs[2])
        context.update(u=u, update=_update(node.attrs.reduction, "y[off + t]",
                                           f"u[{_sum([_mul('j', inner), 't'])}]", x.dtype))
        args.append(u.name)
    return Kernel("index_nd.c.j2", context, args + [y.name])
