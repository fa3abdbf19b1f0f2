"""BatchNormalization (inference form). passes/fold_batchnorm.py folds it into Conv/Gemm."""
from __future__ import annotations

from ...ir.ops.batchnorm import BatchNormAttrs
from ..registry import lowering


@lowering("BatchNormalization", const_inputs=(1, 2, 3, 4))
def lower_batchnorm(ctx, node):
    if ctx.attr("training_mode", 0):
        raise ctx.error("training_mode=1 is not supported (inference only)")
    if not ctx.type(node.input[0]).dtype.is_float:
        raise ctx.error("BatchNormalization supports float tensors")
    if len([o for o in node.output if o]) > 1:
        raise ctx.error("BatchNormalization with running mean/var outputs is not supported")
    ctx.emit("BatchNormalization", list(node.input[:5]), [node.output[0]],
             BatchNormAttrs(float(ctx.attr("epsilon", 1e-5))))
