"""BatchNormalization. The inference form is one IR op (passes/fold_batchnorm.py folds it
into Conv/Gemm); training_mode=1 normalizes with the batch's own statistics and updates the
running ones, from existing IR ops."""
from __future__ import annotations

import numpy as np

from ...ir.ops.batchnorm import BatchNormAttrs
from ...ir.ops.normalization import NormalizeAttrs
from ...ir.ops.reduce import ReduceAttrs
from ..registry import lowering


def _training(ctx, node):
    """Y = Normalize(x) over every axis but 1 (the batch mean and population variance), and
    running_mean/var = input * momentum + batch statistic * (1 - momentum), as onnx's
    reference."""
    x = node.input[0]
    x_t = ctx.type(x)
    c = x_t.shape[1]
    axes = tuple(a for a in range(x_t.rank) if a != 1)
    dt = x_t.dtype.np_dtype
    pshape = (c,) + (1,) * (x_t.rank - 2)
    scale, bias = (ctx.add_constant(f"{x}_bn_{w}", np.asarray(ctx.const_input(i, w)).astype(
        dt).reshape(pshape)) for i, w in ((1, "scale"), (2, "B")))
    eps, momentum = float(ctx.attr("epsilon", 1e-5)), float(ctx.attr("momentum", 0.9))
    ctx.emit("Normalize", [x, scale, bias], [node.output[0]],
             NormalizeAttrs(axes, "meanvar", eps))
    outs = [o for o in node.output[1:3]]
    if not any(outs):
        return
    kept = ctx.temp(f"{x}_bn_mean4", x_t.with_shape(tuple(1 if a != 1 else c
                                                           for a in range(x_t.rank))))
    ctx.emit("ReduceMean", [x], [kept], ReduceAttrs(axes, True))
    d = ctx.temp(f"{x}_bn_d", x_t)
    ctx.emit("Sub", [x, kept], [d])
    d2 = ctx.temp(f"{x}_bn_d2", x_t)
    ctx.emit("Mul", [d, d], [d2])
    for k, (src, out) in enumerate(((x, outs[0]), (d2, outs[1] if len(outs) > 1 else ""))):
        if not out:
            continue
        stat = ctx.temp(f"{out}_batch", x_t.with_shape((c,)))
        ctx.emit("ReduceMean", [src], [stat], ReduceAttrs(axes, False))
        keep = np.asarray(ctx.const_input(3 + k, "input_mean" if k == 0 else "input_var"))
        scaled = ctx.temp(f"{out}_scaled", x_t.with_shape((c,)))
        ctx.emit("Mul", [stat, ctx.add_constant(f"{out}_1m", np.array(1 - momentum, dt))],
                 [scaled])
        ctx.emit("Add", [scaled, ctx.add_constant(f"{out}_keep", (keep * momentum).astype(dt))],
                 [out])


@lowering("BatchNormalization", const_inputs=(1, 2, 3, 4))
def lower_batchnorm(ctx, node):
    if not ctx.type(node.input[0]).dtype.is_float:
        raise ctx.error("BatchNormalization supports float tensors")
    if ctx.attr("training_mode", 0):
        return _training(ctx, node)
    if len([o for o in node.output if o]) > 1:
        raise ctx.error("BatchNormalization with running mean/var outputs is not supported")
    ctx.emit("BatchNormalization", list(node.input[:5]), [node.output[0]],
             BatchNormAttrs(float(ctx.attr("epsilon", 1e-5))))
