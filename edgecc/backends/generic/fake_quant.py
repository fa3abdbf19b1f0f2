"""Portable C kernel for FakeQuant (ir/ops/fake_quant.py: QONNX's Quant and BipolarQuant),
float32 step by step as the op's docstring and qonnx's executor compute it."""
from __future__ import annotations

from ..kernels import Kernel, broadcast_strides, collapse_loops, kernel

# rnd(v) in C, each the float32 twin of ir/ops/fake_quant.ROUNDING (nearbyintf: half to even
# under the default rounding mode; sgn(v) is numpy's sign: -1, 0, +1, NaN for NaN)
ROUND_C = {
    "ROUND": "nearbyintf(v)", "HALF_EVEN": "nearbyintf(v)", "CEIL": "ceilf(v)",
    "FLOOR": "floorf(v)", "DOWN": "truncf(v)", "ROUND_TO_ZERO": "truncf(v)",
    "UP": "edgecc_sgnf(v) * ceilf(fabsf(v))",
    "HALF_UP": "edgecc_sgnf(v) * floorf(fabsf(v) + 0.5f)",
    "HALF_DOWN": "edgecc_sgnf(v) * ceilf(fabsf(v) - 0.5f)",
}


def _needs(rounding: str):
    """The shared numpy-sign helper, for the roundings that use it."""
    return ("fake_quant_helpers.c.j2",) if "edgecc_sgnf" in ROUND_C[rounding] else ()


@kernel("FakeQuant")
def fake_quant(ctx, node):
    x, s, z = (ctx.view(n) for n in node.inputs)
    y = ctx.view(node.outputs[0])
    dims, (sx, ss, sz, sy) = collapse_loops(
        y.shape, broadcast_strides(x.shape, y.shape), broadcast_strides(s.shape, y.shape),
        broadcast_strides(z.shape, y.shape), y.strides)
    a = node.attrs
    return Kernel("fake_quant.c.j2", dict(
        x=x, s=s, z=z, y=y, dims=dims, sx=sx, ss=ss, sz=sz, sy=sy, kind=a.kind,
        lo=f"{float(a.lo)!r}f", hi=f"{float(a.hi)!r}f", rnd=ROUND_C[a.rounding]),
        [x.name, s.name, z.name, y.name], needs=_needs(a.rounding))


@kernel("FakeTrunc")
def fake_trunc(ctx, node):
    views = [ctx.view(n) for n in node.inputs]
    y = ctx.view(node.outputs[0])
    dims, strides = collapse_loops(y.shape, *(broadcast_strides(v.shape, y.shape) for v in views),
                                   y.strides)
    a = node.attrs
    return Kernel("fake_trunc.c.j2", dict(
        y=y, dims=dims, st=strides, clamp=a.clamp, lo=f"{float(a.lo)!r}f",
        hi=f"{float(a.hi)!r}f", rnd=ROUND_C[a.rounding]), [v.name for v in views] + [y.name],
        needs=_needs(a.rounding))
