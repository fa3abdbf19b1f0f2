"""ONNX lowerings: Signal processing for audio front ends: DFT, STFT, MelWeightMatrix and the
window functions.

HannWindow, HammingWindow, BlackmanWindow and MelWeightMatrix take only compile-time inputs:
their outputs become constants (the loader already folds them when they feed other nodes;
these lowerings are reached when one is a graph output). DFT and STFT lower to the IR ops of
ir/ops/spectral.py, with every length a compile-time constant.
"""
from __future__ import annotations

import numpy as np

from ...ir import DType, TensorType
from ...ir.ops.spectral import DFTAttrs, STFTAttrs, mel_weight_matrix, window
from ..registry import lowering
from .shape_ops import add_folded


def _int_scalar(ctx, i: int, what: str, default=None):
    """A compile-time integer scalar input (shape [] or [1]), or ``default`` when absent."""
    value = ctx.const_input(i, what, None)
    if value is None:
        return default
    flat = np.asarray(value).reshape(-1)
    if flat.size != 1:
        raise ctx.error(f"{what} must be a scalar")
    return int(flat[0])


def _output_dtype(ctx) -> DType:
    from onnx import TensorProto
    code = ctx.attr("output_datatype", TensorProto.FLOAT)
    try:
        return DType.from_onnx(code)
    except KeyError:
        raise ctx.error(f"output_datatype {TensorProto.DataType.Name(code)} is not "
                        "supported") from None


@lowering("HannWindow", "HammingWindow", "BlackmanWindow", const_inputs=(0,))
def lower_window(ctx, node):
    """A window of compile-time size: a constant, computed in double and then converted to
    output_datatype as onnx's reference does."""
    size = _int_scalar(ctx, 0, "size")
    periodic = bool(ctx.attr("periodic", 1))
    if size < 1 or (size < 2 and not periodic):
        raise ctx.error(f"window size {size} is too small")
    dtype = _output_dtype(ctx)
    add_folded(ctx, node.output[0], window(node.op_type, size, periodic).astype(dtype.np_dtype))


@lowering("MelWeightMatrix", const_inputs=(0, 1, 2, 3, 4))
def lower_mel_weight_matrix(ctx, node):
    """A constant [dft_length // 2 + 1, num_mel_bins] matrix (ir/ops/spectral.py)."""
    values = []
    for i, what in enumerate(("num_mel_bins", "dft_length", "sample_rate",
                              "lower_edge_hertz", "upper_edge_hertz")):
        v = np.asarray(ctx.const_input(i, what))
        if v.size != 1:
            raise ctx.error(f"{what} must be a scalar")
        values.append(v.reshape(()))
    num_mel_bins, dft_length, sample_rate = (int(v) for v in values[:3])
    if num_mel_bins < 1 or dft_length < 1 or sample_rate < 1:
        raise ctx.error("num_mel_bins, dft_length and sample_rate must be positive")
    if not 0 <= float(values[3]) < float(values[4]):
        raise ctx.error("the edges must satisfy 0 <= lower_edge_hertz < upper_edge_hertz")
    dtype = _output_dtype(ctx)
    try:
        matrix = mel_weight_matrix(*values)
    except IndexError:
        raise ctx.error("upper_edge_hertz puts a mel triangle beyond the last DFT bin "
                        "(at most sample_rate / 2)") from None
    add_folded(ctx, node.output[0], matrix.astype(dtype.np_dtype))


def _signal_type(ctx, name: str, what: str) -> TensorType:
    t = ctx.type(name)
    if t.dtype not in (DType.FLOAT32, DType.FLOAT64):
        raise ctx.error(f"{what} of type {t.dtype.name.lower()} is not supported")
    if len(t.shape) < 2 or t.shape[-1] not in (1, 2):
        raise ctx.error(f"{what} must end with an axis of 1 (real) or 2 (complex), "
                        f"not shape {list(t.shape)}")
    return t


def _emit(ctx, op: str, inputs, out: str, attrs, ttype: TensorType) -> None:
    """Emit ``op`` with the output type its semantics give, refusing a model whose later nodes
    onnx shape inference typed with another shape (onnx 1.23 infers STFT's output as
    two-sided when the onesided attribute is absent, though its default is 1)."""
    inferred = ctx.shapes.get(out)
    if inferred is not None and tuple(inferred[1]) != tuple(ttype.shape):
        hint = (": set the onesided attribute explicitly" if op == "STFT"
                and ctx.attr("onesided") is None else "")
        raise ctx.error(f"onnx shape inference gives the output shape {list(inferred[1])}, "
                        f"the op computes {list(ttype.shape)}{hint}")
    ctx.emit(op, inputs, [out], attrs, types=[ttype])


@lowering("DFT", const_inputs=(1, 2))
def lower_dft(ctx, node):
    """DFT (opset 17: axis attribute, default 1; opset 20: axis input, default -2) with a
    compile-time dft_length (default: the axis' size, 2 (size - 1) for an inverse onesided
    transform)."""
    x = _signal_type(ctx, node.input[0], "the input")
    rank = len(x.shape)
    if ctx.opset >= 20:
        axis = _int_scalar(ctx, 2, "axis", -2)
    else:
        axis = int(ctx.attr("axis", 1))
    if not -rank <= axis < rank or axis % rank == rank - 1:
        raise ctx.error(f"axis {axis} is out of range for a rank-{rank} input")
    axis %= rank
    inverse, onesided = bool(ctx.attr("inverse", 0)), bool(ctx.attr("onesided", 0))
    default = 2 * (x.shape[axis] - 1) if inverse and onesided else x.shape[axis]
    length = _int_scalar(ctx, 1, "dft_length", default)
    if length < 1:
        raise ctx.error(f"dft_length {length} must be positive")
    shape = list(x.shape)
    shape[axis] = length // 2 + 1 if onesided and not inverse else length
    shape[-1] = 1 if inverse and onesided else 2
    _emit(ctx, "DFT", [node.input[0]], node.output[0], DFTAttrs(axis, length, inverse, onesided),
          x.with_shape(tuple(shape)))


@lowering("STFT", const_inputs=(1, 3))
def lower_stft(ctx, node):
    """STFT of a [batch, length, 1|2] signal: compile-time frame_step and frame_length (or the
    window's length); the window, when given, may be computed at run time."""
    x = _signal_type(ctx, node.input[0], "the signal")
    if len(x.shape) != 3:
        raise ctx.error(f"the signal must be [batch, length, 1|2], not {list(x.shape)}")
    step = _int_scalar(ctx, 1, "frame_step")
    win = ctx.input(2)
    win_len = None
    if win:
        w = ctx.type(win)
        if w.dtype != x.dtype or len(w.shape) != 1:
            raise ctx.error("the window must be a 1-D tensor of the signal's type")
        win_len = w.shape[0]
    length = _int_scalar(ctx, 3, "frame_length", win_len if win else x.shape[1])
    if win_len is not None and win_len != length:
        raise ctx.error(f"window length {win_len} differs from frame_length {length}")
    if step < 1 or not 1 <= length <= x.shape[1]:
        raise ctx.error(f"frame_step {step} and frame_length {length} must be positive, "
                        f"frame_length at most the signal length {x.shape[1]}")
    onesided = bool(ctx.attr("onesided", 1))
    frames = 1 + (x.shape[1] - length) // step
    shape = (x.shape[0], frames, length // 2 + 1 if onesided else length, 2)
    inputs = [node.input[0]] + ([win] if win else [])
    _emit(ctx, "STFT", inputs, node.output[0], STFTAttrs(step, length, onesided),
          x.with_shape(shape))
