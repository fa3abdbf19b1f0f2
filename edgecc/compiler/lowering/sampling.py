"""GridSample (opset 16-22): sample X at the grid's normalized coordinates, N-D."""
from __future__ import annotations

from ...ir.ops.sampling import GridSampleAttrs
from ..registry import lowering

_MODES = {"bilinear": "linear", "bicubic": "cubic", "linear": "linear", "cubic": "cubic",
          "nearest": "nearest"}


@lowering("GridSample")
def lower_grid_sample(ctx, node):
    x_t, g_t = ctx.type(node.input[0]), ctx.type(node.input[1])
    mode = ctx.attr("mode", "linear" if ctx.opset >= 20 else "bilinear")
    padding = ctx.attr("padding_mode", "zeros")
    if mode not in _MODES:
        raise ctx.error(f"GridSample mode '{mode}' is not supported")
    if padding not in ("zeros", "border", "reflection"):
        raise ctx.error(f"GridSample padding_mode '{padding}' is not supported")
    if not x_t.dtype.is_float or not g_t.dtype.is_float:
        raise ctx.error(f"GridSample on {x_t.dtype.name.lower()} is not supported")
    spatial = x_t.rank - 2
    if spatial < 1 or g_t.rank != spatial + 2 or g_t.shape[-1] != spatial:
        raise ctx.error(f"GridSample: grid shape {list(g_t.shape)} does not match X "
                        f"{list(x_t.shape)}")
    if _MODES[mode] == "cubic" and spatial != 2:
        raise ctx.error("GridSample cubic mode is defined for 4-D inputs only")
    attrs = GridSampleAttrs(_MODES[mode], padding, bool(ctx.attr("align_corners", 0)))
    ctx.emit("GridSample", [node.input[0], node.input[1]], [node.output[0]], attrs)
