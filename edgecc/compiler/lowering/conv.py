"""Conv and ConvTranspose: explicit pads (auto_pad resolved), N-d, grouped, dilated."""
from __future__ import annotations

from ...ir.ops.conv import ConvAttrs, ConvTransposeAttrs
from ..registry import lowering


def explicit_pads(ctx, in_sp, out_sp, kernel, strides, dilations):
    """Pads (begins, then ends) with auto_pad resolved, as ONNX defines SAME_UPPER/LOWER."""
    mode = ctx.attr("auto_pad", "NOTSET")
    nsp = len(kernel)
    if mode == "NOTSET":
        return tuple(int(p) for p in ctx.attr("pads", [0] * (2 * nsp)))
    if mode == "VALID":
        return (0,) * (2 * nsp)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.error(f"unknown auto_pad '{mode}'")
    begin, end = [], []
    for i in range(nsp):
        eff_k = (kernel[i] - 1) * dilations[i] + 1
        total = max(0, (out_sp[i] - 1) * strides[i] + eff_k - in_sp[i])
        small, big = total // 2, total - total // 2
        begin.append(big if mode == "SAME_LOWER" else small)
        end.append(small if mode == "SAME_LOWER" else big)
    return tuple(begin + end)


@lowering("Conv")
def lower_conv(ctx, node):
    x_t = ctx.type(node.input[0])
    w_t = ctx.type(node.input[1])
    y_t = ctx.type(node.output[0])
    if not x_t.dtype.is_float:
        raise ctx.error(f"Conv on {x_t.dtype.name.lower()} is not supported")
    nsp = x_t.rank - 2
    if nsp < 1 or nsp > 3:
        raise ctx.error(f"Conv with {nsp} spatial dims is not supported (1 to 3)")
    kernel = tuple(ctx.attr("kernel_shape", w_t.shape[2:]))
    strides = tuple(ctx.attr("strides", [1] * nsp))
    dilations = tuple(ctx.attr("dilations", [1] * nsp))
    pads = explicit_pads(ctx, x_t.shape[2:], y_t.shape[2:], kernel, strides, dilations)
    attrs = ConvAttrs(kernel, strides, pads, dilations, int(ctx.attr("group", 1)))
    ctx.emit("Conv", list(node.input[:3]), [node.output[0]], attrs)


def _transpose_pads(ctx, in_sp, out_sp, kernel, strides, dilations, out_pad):
    """Begin/end pads of a ConvTranspose (ONNX spec, as onnxruntime applies it).

    The full (unpadded) output along an axis has
        full = S * (in - 1) + output_padding + (K - 1) * D + 1
    elements; output element o is full element o + pad_begin. With explicit ``pads`` the
    output has full - pad_begin - pad_end elements. When ``output_shape`` is given (it wins
    over ``pads``) or auto_pad is SAME_*, the total pad is full - out, split in half with the
    odd element at the end for SAME_UPPER and at the beginning otherwise. A negative total
    (output larger than full) pads nothing: the extra elements at the end get only the bias.
    """
    nsp = len(kernel)
    mode = ctx.attr("auto_pad", "NOTSET")
    explicit = ctx.attr("pads", None)
    if ctx.attr("output_shape", None) is None and mode not in ("SAME_UPPER", "SAME_LOWER"):
        pads = tuple(int(p) for p in (explicit if explicit is not None else [0] * 2 * nsp))
        if len(pads) != 2 * nsp:
            raise ctx.error(f"pads has {len(pads)} values, expected {2 * nsp}")
        return pads
    begin, end = [], []
    for i in range(nsp):
        full = (strides[i] * (in_sp[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1)
        total = max(0, full - out_sp[i])
        b = total // 2 if mode == "SAME_UPPER" else total - total // 2
        begin.append(b)
        end.append(total - b)
    return tuple(begin + end)


@lowering("ConvTranspose")
def lower_conv_transpose(ctx, node):
    x_t = ctx.type(node.input[0])
    w_t = ctx.type(node.input[1])
    y_t = ctx.type(node.output[0])
    nsp = x_t.rank - 2
    if not x_t.dtype.is_float or nsp < 1 or nsp > 3:
        raise ctx.error("ConvTranspose supports float tensors with 1 to 3 spatial dims")
    kernel = tuple(ctx.attr("kernel_shape", w_t.shape[2:]))
    strides = tuple(ctx.attr("strides", [1] * nsp))
    dilations = tuple(ctx.attr("dilations", [1] * nsp))
    out_pad = tuple(ctx.attr("output_padding", [0] * nsp))
    pads = _transpose_pads(ctx, x_t.shape[2:], y_t.shape[2:], kernel, strides, dilations,
                           out_pad)
    attrs = ConvTransposeAttrs(kernel, strides, pads, dilations, int(ctx.attr("group", 1)))
    ctx.emit("ConvTranspose", list(node.input[:3]), [node.output[0]], attrs)
