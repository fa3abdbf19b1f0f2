"""Portable C kernels for Gemm and MatMul: one strided matrix-multiply template."""
from __future__ import annotations

import numpy as np

from ..codegen import c_literal
from ..kernels import Kernel, broadcast_strides, collapse_loops, kernel
from .elementwise import activation_expr, unsigned_ctype


def _act(node, dtype):
    act = node.attrs.activation
    return activation_expr(act.kind, "acc", dtype, act.alpha, act.beta) if act else "acc"


def _arith(dtype):
    """Accumulator type and operand cast: integers accumulate in the unsigned type of their
    width, so overflow wraps instead of being undefined."""
    if dtype.is_float:
        return dict(acc_t=dtype.c_type, cast="", store="acc")
    u = unsigned_ctype(dtype)
    return dict(acc_t=u, cast=f"({u})", store=f"({dtype.c_type})acc")


@kernel("Gemm")
def gemm(ctx, node):
    a, b, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    at = node.attrs
    M, N = y.shape
    K = a.shape[0] if at.trans_a else a.shape[1]
    sam, sak = (1, M) if at.trans_a else (K, 1)
    sbk, sbn = (1, K) if at.trans_b else (N, 1)
    c_name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else ""
    c = ctx.view(c_name) if c_name and at.beta != 0 else None
    scm, scn = broadcast_strides(c.shape, (M, N)) if c else (0, 0)
    lit = lambda v: c_literal(v, a.dtype)  # noqa: E731
    return Kernel("matmul.c.j2", dict(
        a=a, b=b, c=c, y=y, batch_dims=[], sa_b=[], sb_b=[], sy_b=[],
        M=M, N=N, K=K, sam=sam, sak=sak, sbk=sbk, sbn=sbn, scm=scm, scn=scn,
        alpha=None if at.alpha == 1.0 else lit(at.alpha),
        beta=None if at.beta == 1.0 else lit(at.beta), act=_act(node, a.dtype),
        **_arith(a.dtype)), [a.name, b.name] + ([c.name] if c else []) + [y.name])


@kernel("MatMul")
def matmul(ctx, node):
    a, b, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    a_shape = (1,) + a.shape if a.rank == 1 else a.shape
    b_shape = b.shape + (1,) if b.rank == 1 else b.shape
    M, K, N = a_shape[-2], a_shape[-1], b_shape[-1]
    batch = tuple(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
    a_bs = broadcast_strides(a_shape[:-2], batch)
    b_bs = broadcast_strides(b_shape[:-2], batch)
    a_bs = tuple(s * M * K for s in a_bs)
    b_bs = tuple(s * K * N for s in b_bs)
    y_bs = tuple(s * M * N for s in broadcast_strides(batch, batch))
    dims, (sa_b, sb_b, sy_b) = collapse_loops(batch, a_bs, b_bs, y_bs) if batch else ([], ([], [], []))
    return Kernel("matmul.c.j2", dict(
        a=a, b=b, c=None, y=y, batch_dims=dims, sa_b=sa_b, sb_b=sb_b, sy_b=sy_b,
        M=M, N=N, K=K, sam=K, sak=1, sbk=N, sbn=1, scm=0, scn=0, alpha=None, beta=None,
        act=_act(node, a.dtype), **_arith(a.dtype)), [a.name, b.name, y.name])
