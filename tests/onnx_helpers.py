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
