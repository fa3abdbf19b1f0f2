"""Portable C kernel for Einsum (see compiler/lowering/einsum.py and ir/ops/einsum.py).

One loop per label: the output's labels outside, the summed labels inside; each input is read
at the sum of its axes' strides times their labels' loop variables (0 for a broadcast axis,
the sum of both strides for a diagonal). The accumulator has the tensors' float type.
"""
from __future__ import annotations

from ..kernels import Kernel, kernel


def _index(terms) -> str:
    """C expression sum(var * stride) over (var, stride) pairs, "0" when empty."""
    parts = [v if s == 1 else f"{v} * {s}" for v, s in terms if s != 0]
    return " + ".join(parts) or "0"


@kernel("Einsum")
def einsum(ctx, node):
    a = node.attrs
    xs = [ctx.view(n) for n in node.inputs]
    y = ctx.view(node.outputs[0])
    var = [f"l{k}" for k in range(len(a.sizes))]
    reduced = [k for k in range(len(a.sizes)) if k not in a.output]
    reads = []
    for x, labels in zip(xs, a.inputs):
        terms = [(var[k], 0 if d == 1 and a.sizes[k] != 1 else s)
                 for k, d, s in zip(labels, x.shape, x.strides)]
        reads.append(_index(terms))
    out_index = _index([(var[k], s) for k, s in zip(a.output, y.strides)])
    product = " * ".join(f"x{i}[{r}]" for i, r in enumerate(reads))
    return Kernel("einsum.c.j2",
                  dict(xs=xs, y=y, vars=var,
                       outer=[(var[k], a.sizes[k]) for k in a.output],
                       inner=[(var[k], a.sizes[k]) for k in reduced],
                       product=product, out_index=out_index),
                  list(node.inputs) + [y.name])
