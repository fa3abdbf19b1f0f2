"""Portable C kernels: Normalize (Instance/Group/Lp/RMS/MeanVariance normalization), LRN,
LpPool and MaxUnpool (see compiler/lowering/normalization.py and ir/ops/normalization.py)."""
from __future__ import annotations

import numpy as np

from ...ir import DType
from ..codegen import c_literal
from ..kernels import Kernel, broadcast_strides, collapse_loops, kernel
from .pool import pool_context


def _index(names, strides) -> str:
    """C expression sum(name * stride), without the "* 1"s and "* 0"s ("0" if empty)."""
    terms = [n if s == 1 else f"{n} * {s}" for n, s in zip(names, strides) if s != 0]
    return " + ".join(terms) or "0"


def _group(x, axes, stride_lists, prefix):
    """Collapsed loops over ``axes`` of x: (loop vars, dims, index expression per operand)."""
    dims, strides = collapse_loops([x.shape[a] for a in axes],
                                   *[[s[a] for a in axes] for s in stride_lists])
    names = [f"{prefix}{i}" for i in range(len(dims))]
    return names, dims, [_index(names, s) for s in strides]


def _plus(a: str, b: str) -> str:
    return b if a == "0" else a if b == "0" else f"{a} + {b}"


# mode -> (subtracts the mean, accumulated term of d, C of the divisor or factor r)
_MODES = {
    "meanvar": (True, "d * d", "r = 1 / {sqrt}(acc / {n} + {eps});"),
    "rms": (False, "d * d", "r = 1 / {sqrt}(acc / {n} + {eps});"),
    "mvn": (True, "d * d", "r = {sqrt}(acc / {n}) + {eps};"),
    "l1": (False, "{fabs}(d)", "r = acc;"),
    "l2": (False, "d * d", "r = {sqrt}(acc);"),
}


@kernel("Normalize")
def normalize(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    params = [ctx.view(n) if n else None for n in (list(node.inputs[1:3]) + ["", ""])[:2]]
    scale, bias = params
    axes = node.attrs.axes
    kept = [a for a in range(x.rank) if a not in axes]
    strides = [x.strides] + [broadcast_strides(p.shape, x.shape) for p in params if p]
    ov, odims, obase = _group(x, kept, strides, "o")
    iv, idims, iidx = _group(x, axes, strides, "r")
    n = int(np.prod([x.shape[a] for a in axes]))
    f32 = x.dtype == DType.FLOAT32
    mean, term, r = _MODES[node.attrs.mode]
    fmt = dict(sqrt="sqrtf" if f32 else "sqrt", fabs="fabsf" if f32 else "fabs",
               n=str(n), eps=c_literal(node.attrs.epsilon, x.dtype))
    value = {"meanvar": "d * r", "rms": "d * r", "mvn": "d / r"}.get(
        node.attrs.mode, "r == 0 ? 0 : d / r")
    k = 1
    if scale:
        value = f"({value}) * scale[{_plus(obase[k], iidx[k])}]"
        k += 1
    if bias:
        value = f"{value} + bias[{_plus(obase[k], iidx[k])}]"
    return Kernel("normalization_normalize.c.j2",
                  dict(x=x, y=y, scale=scale, bias=bias, empty=x.numel == 0,
                       outer_loops=list(zip(ov, odims)), inner_loops=list(zip(iv, idims)),
                       vars=ov + iv, base=obase[0], in_index=iidx[0], mean=mean,
                       term=term.format(**fmt), r=r.format(**fmt), value=value, n=fmt["n"]),
                  [n for n in node.inputs if n] + [y.name])


@kernel("LRN")
def lrn(ctx, node):
    x, y = ctx.view(node.inputs[0]), ctx.view(node.outputs[0])
    a = node.attrs
    f32 = x.dtype == DType.FLOAT32
    inner = int(np.prod(x.shape[2:]))
    return Kernel("normalization_lrn.c.j2",
                  dict(x=x, y=y, N=x.shape[0], C=x.shape[1], S=inner,
                       before=(a.size - 1) // 2, after=a.size - 1 - (a.size - 1) // 2,
                       bias=c_literal(a.bias, x.dtype),
                       alpha=c_literal(np.float64(a.alpha) / a.size, x.dtype),
                       beta=c_literal(a.beta, x.dtype), pow="powf" if f32 else "pow"),
                  [x.name, y.name])


@kernel("LpPool")
def lp_pool(ctx, node):
    context = pool_context(ctx, node)
    x = context["x"]
    f32 = x.dtype == DType.FLOAT32
    p = node.attrs.p
    fabs, sqrt, pw = ("fabsf", "sqrtf", "powf") if f32 else ("fabs", "sqrt", "pow")
    if p == 1:
        term, result = f"{fabs}(v)", "acc"
    elif p == 2:
        term, result = "v * v", f"{sqrt}(acc)"
    else:
        inv = c_literal(1.0 / p, x.dtype)
        term = " * ".join([f"{fabs}(v)"] * p) if p <= 4 else \
            f"{pw}({fabs}(v), {c_literal(p, x.dtype)})"
        result = f"{pw}(acc, {inv})"
    context.update(term=term, result=result)
    return Kernel("normalization_lppool.c.j2", context, [node.inputs[0], node.outputs[0]])


@kernel("MaxUnpool")
def max_unpool(ctx, node):
    x, ind, y = ctx.view(node.inputs[0]), ctx.view(node.inputs[1]), ctx.view(node.outputs[0])
    inferred = node.attrs.inferred
    total = int(np.prod(inferred))
    # flat index in the inferred shape -> flat index in y: one (divisor, modulus, y stride)
    # per axis, innermost first; none when the shapes are equal
    axes = []
    if tuple(inferred) != tuple(y.shape):
        div = 1
        for a in range(len(inferred) - 1, -1, -1):
            axes.append((div, inferred[a], y.strides[a]))
            div *= inferred[a]
    return Kernel("normalization_maxunpool.c.j2",
                  dict(x=x, ind=ind, y=y, total=total, axes=axes),
                  [x.name, ind.name, y.name])
