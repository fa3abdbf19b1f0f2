"""Small ONNX model builders shared by the tests."""
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = TensorProto.FLOAT


def rand(rng, *shape, lo=None, hi=None):
    if lo is not None:
        return rng.uniform(lo, hi, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def make_model(nodes, inputs, outputs, inits=None, opset=17):
    """inputs/outputs: [(name, shape)]; inits: {name: array}."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, F32, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, F32, s) for n, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    onnx.checker.check_model(model)
    return model


@functools.lru_cache(maxsize=None)
def trained_digits_onnx() -> str:
    """Train the digits CNN on scikit-learn's load_digits now (examples/digits/train.py,
    seeded, a few seconds) and return the exported ONNX path: the int8 tests quantize a
    model trained in the test run, not only the bundled file."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tempfile.mkdtemp(prefix="edgecc-digits-")
    subprocess.run([sys.executable, os.path.join(root, "examples", "digits", "train.py"),
                    "--out", out], check=True, capture_output=True)
    return os.path.join(out, "digits_cnn.onnx")


def quantize_ort(float_path, out_path, input_name, calib, per_channel=True,
                 activation="QInt8", fmt="QDQ"):
    """onnxruntime's quantize_static of ``float_path``, calibrated on the samples ``calib``
    (each without its batch axis), QInt8 weights."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{input_name: x[None]} for x in calib])

        def get_next(self):
            return next(self.items, None)

    # quantize_static writes <model>-inferred.onnx next to its input and deletes it: give it a
    # private copy, so that tests quantizing the same model in parallel do not race
    private = os.path.join(os.path.dirname(os.path.abspath(out_path)),
                           "source_" + os.path.basename(out_path))
    shutil.copyfile(float_path, private)
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" warnings
    try:
        quantize_static(private, out_path, Reader(), quant_format=getattr(QuantFormat, fmt),
                        per_channel=per_channel, weight_type=QuantType.QInt8,
                        activation_type=getattr(QuantType, activation))
    finally:
        logging.getLogger().setLevel(level)
        os.remove(private)
    return out_path


QONNX_DOMAIN = "qonnx.custom_op.general"


def quant(inp, out, scale, zp, bits, signed=1, narrow=0, rounding="ROUND"):
    return helper.make_node("Quant", [inp, scale, zp, bits], [out], domain=QONNX_DOMAIN,
                            signed=signed, narrow=narrow, rounding_mode=rounding)


def qonnx_cnn(rng, wbits, abits, rounding="ROUND"):
    """A small CNN as Brevitas exports it: Quant on the input, on every weight (per output
    channel, signed narrow) and after every activation; BipolarQuant where a bit width is 1."""
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.2, (10, 8 * 4 * 4)).astype(np.float32)
    b2 = rng.normal(0, 0.1, 10).astype(np.float32)
    inits = {"w1": w1, "w2": w2, "b2": b2, "zero": np.float32(0),
             "in_scale": np.float32(0.05), "act_scale": np.float32(0.08),
             "out_scale": np.float32(0.25)}
    nodes = [quant("x", "xq", "in_scale", "zero", "in_bits", 1, 0, rounding)]
    inits["in_bits"] = np.float32(8)
    for name, w, axes in (("w1", w1, (8, 1, 1, 1)), ("w2", w2, (10, 1))):
        if wbits == 1:
            inits[f"{name}_s"] = np.abs(w).reshape(w.shape[0], -1).mean(1).reshape(axes)
            nodes.append(helper.make_node("BipolarQuant", [name, f"{name}_s"], [f"{name}q"],
                                          domain=QONNX_DOMAIN))
        else:
            top = 2 ** (wbits - 1) - 1
            inits[f"{name}_s"] = (np.abs(w).reshape(w.shape[0], -1).max(1) / top).reshape(axes)
            inits[f"{name}_bits"] = np.float32(wbits)
            nodes.append(quant(name, f"{name}q", f"{name}_s", "zero", f"{name}_bits", 1, 1))
    nodes += [helper.make_node("Conv", ["xq", "w1q"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2])]
    if abits == 1:
        nodes += [helper.make_node("BipolarQuant", ["c1", "act_scale"], ["a1"], domain=QONNX_DOMAIN)]
    else:
        inits["act_bits"] = np.float32(abits)
        nodes += [helper.make_node("Relu", ["c1"], ["r1"]),
                  quant("r1", "a1", "act_scale", "zero", "act_bits", 0, 0, rounding)]
    nodes += [helper.make_node("Flatten", ["a1"], ["f"]),
              helper.make_node("Gemm", ["f", "w2q", "b2"], ["g"], transB=1),
              quant("g", "y", "out_scale", "zero", "in_bits", 1, 0, rounding)]
    graph = helper.make_graph(
        nodes, "qonnx_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid(QONNX_DOMAIN, 1)])
