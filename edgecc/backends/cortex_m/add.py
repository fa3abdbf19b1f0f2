"""int8 elementwise add for Cortex-M (QAdd of two same-shape int8 tensors), generated per layer.

TFLite's Add (QUANT.md, ir/quant_ref.py): each input (x - z) * 2^20 is rescaled by its (M0,
shift), the two are summed, and the sum is rescaled to the output. Every SRDHM here is
SMMULR(2 v, M0), exact because |v| < 2^30 (|x - z| 2^20 < 2^28 and the rescaled inputs do not
grow), and every right shift e (0 for the larger input, whose multiplier is 0.5) rounds as
(x + 2^(e-1) - [x < 0]) >> e, exact for |x| < 2^30. Layers with a left shift on the output
(an output scale below 2^-19 of the inputs') go to the next backend.
"""
from __future__ import annotations

from typing import Optional

from ...ir.quant_ref import add_multipliers
from ..generic.int8 import activation_bounds
from ..kernels import Kernel


def plan(graph, node) -> Optional[dict]:
    if node.op != "QAdd":
        return None
    a, b, y = (graph.types[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if a.shape != b.shape or any(t.dtype.name != "INT8" for t in (a, b, y)):
        return None
    (ma, sa), (mb, sb), (my, sy) = add_multipliers(a.quant.scale[0], b.quant.scale[0],
                                                   y.quant.scale[0])
    if max(sa, sb, sy) > 0 or min(sa, sb, sy) < -31:
        return None
    return dict(ma=ma, ea=-sa, za=a.quant.zero_point[0], mb=mb, eb=-sb,
                zb=b.quant.zero_point[0], my=my, ey=-sy, zy=y.quant.zero_point[0])


def emit(ctx, node, template="cm_add.c.j2", needs=("cm_dsp.c.j2",)):
    """The kernel of ``template`` (another backend's add reuses this with its own) or None."""
    found = plan(ctx.graph, node)
    if found is None:
        return None
    y_t = ctx.graph.types[node.outputs[0]]
    act_min, act_max = activation_bounds(node.attrs.activation, y_t)
    a, b, y = (ctx.view(n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    return Kernel(template, dict(a=a, b=b, y=y, p=found, act_min=act_min, act_max=act_max),
                  [a.name, b.name, y.name], needs=needs)
