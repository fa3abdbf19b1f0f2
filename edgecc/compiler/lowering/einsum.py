"""ONNX lowering: Einsum (any equation, float types) to the IR op ``Einsum``.

The equation is resolved here into label numbers (ir/ops/einsum.py): letters get one number
each; "..." stands for the broadcast axes, right-aligned across the inputs as numpy
broadcasts, each axis its own number. Without "->" the output is the ellipsis axes, then the
letters that occur once, in alphabetical order (numpy's implicit mode). An explicit output
must keep the ellipsis when the inputs' ellipses stand for any axis (numpy's rule).
"""
from __future__ import annotations

from ...ir import DType
from ...ir.ops.einsum import EinsumAttrs
from ..registry import lowering

ELLIPSIS = "..."


def _split(ctx, term: str):
    """A term's letters, with None at the ellipsis's position (at most one)."""
    if term.count(ELLIPSIS) > 1:
        raise ctx.error(f"term '{term}' has more than one ellipsis")
    out = []
    rest = term
    while rest:
        if rest.startswith(ELLIPSIS):
            out.append(None)
            rest = rest[len(ELLIPSIS):]
        elif rest[0].isalpha():
            out.append(rest[0])
            rest = rest[1:]
        else:
            raise ctx.error(f"term '{term}' has an invalid character '{rest[0]}'")
    return out


def parse_equation(ctx, equation: str, shapes):
    """(labels per input, output labels, sizes): the equation's labels as numbers."""
    eq = "".join(equation.split())
    lhs, arrow, rhs = eq.partition("->")
    terms = [_split(ctx, t) for t in lhs.split(",")]
    if len(terms) != len(shapes):
        raise ctx.error(f"equation '{equation}' has {len(terms)} terms for "
                        f"{len(shapes)} inputs")
    ell_ranks = []
    for term, shape in zip(terms, shapes):
        letters = sum(1 for c in term if c is not None)
        if None not in term and letters != len(shape):
            raise ctx.error(f"term with {letters} labels for an input of rank {len(shape)}")
        if letters > len(shape):
            raise ctx.error(f"term with {letters} labels for an input of rank {len(shape)}")
        ell_ranks.append(len(shape) - letters if None in term else 0)
    n_ell = max(ell_ranks, default=0)
    numbers = {("...", i): i for i in range(n_ell)}
    sizes = [1] * n_ell
    labels = []
    for term, shape, e in zip(terms, shapes, ell_ranks):
        axes, dims = [], list(shape)
        for c in term:
            if c is None:
                axes += [numbers[("...", i)] for i in range(n_ell - e, n_ell)]
            else:
                axes.append(numbers.setdefault(c, len(numbers)))
                if axes[-1] == len(sizes):
                    sizes.append(dims[len(axes) - 1])
        for k, d in zip(axes, dims):
            if k < n_ell and sizes[k] == 1:
                sizes[k] = d
            elif k < n_ell and d not in (1, sizes[k]):
                raise ctx.error(f"ellipsis axes of sizes {sizes[k]} and {d} do not broadcast")
            elif k >= n_ell and sizes[k] != d:
                raise ctx.error(f"label sizes {sizes[k]} and {d} differ")
        labels.append(tuple(axes))
    if arrow:
        out = []
        for c in _split(ctx, rhs):
            if c is None:
                out += list(range(n_ell))
            elif c not in numbers:
                raise ctx.error(f"output label '{c}' is in no input")
            else:
                out.append(numbers[c])
        if n_ell and ELLIPSIS not in rhs:
            raise ctx.error(f"output '{rhs}' drops the ellipsis's {n_ell} axes (numpy refuses)")
        if len(set(out)) != len(out):
            raise ctx.error(f"output '{rhs}' repeats a label")
    else:
        once = sorted(c for c in numbers if isinstance(c, str)
                      and sum(t.count(c) for t in terms) == 1)
        out = list(range(n_ell)) + [numbers[c] for c in once]
    return tuple(labels), tuple(out), tuple(sizes)


@lowering("Einsum")
def lower_einsum(ctx, node):
    equation = ctx.attr("equation")
    if equation is None:
        raise ctx.error("equation is required")
    types = [ctx.type(i) for i in node.input]
    if not types:
        raise ctx.error("Einsum needs at least one input")
    dtype = types[0].dtype
    if dtype not in (DType.FLOAT32, DType.FLOAT64) or any(t.dtype != dtype for t in types):
        raise ctx.error(f"Einsum on {dtype.name.lower()} is not supported (float, double)")
    labels, out, sizes = parse_equation(ctx, equation, [t.shape for t in types])
    y_t = types[0].with_shape(tuple(sizes[k] for k in out))
    ctx.emit("Einsum", list(node.input), [node.output[0]], EinsumAttrs(labels, out, sizes),
             types=[y_t])
