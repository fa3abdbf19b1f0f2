"""onnxruntime quantizer outputs besides its int8 QDQ default.

4-bit weights (issue 15): QDQ models with INT4 weights, as com.microsoft QuantizeLinear /
DequantizeLinear (what quantize_static emits before opset 21) and as standard ones at opset
21, compile onto the integer kernels (the weights held as int8 values in [-8, 7], their
QuantParams saying 4 bits), are marked w4 by analyze, and pass verify against onnxruntime like
any int8 model. uint8 activations (QuantType.QUInt8): the Cortex-M NHWC kernels are int8 only,
so those layers stay on the portable kernels there, and the C builds (it did not: the NHWC
layout took them)."""
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from edgecc.analyze import analysis
from edgecc.compiler.driver import compile_model

DIGITS = "examples/digits/digits_cnn.onnx"


class Reader(CalibrationDataReader):
    def __init__(self, name, shape):
        self.data = iter([{name: np.random.default_rng(i).normal(0, 1, shape).astype(np.float32)}
                          for i in range(8)])

    def get_next(self):
        return next(self.data, None)


@pytest.mark.parametrize("opset", [17, 21])
def test_int4_weights_take_the_integer_kernels(opset, tmp_path):
    path = _quantize(tmp_path, QuantType.QInt4, QuantType.QInt8, opset)
    q = onnx.load(path)
    domains = {n.domain for n in q.graph.node if n.op_type == "DequantizeLinear"}
    assert domains == ({"com.microsoft"} if opset < 21 else {""})
    assert any(t.data_type == onnx.TensorProto.INT4 for t in q.graph.initializer)
    result = compile_model(path, "generic")
    layers = analysis(result)["layers"]
    convs = [lay for lay in layers if lay["op"].startswith(("QConv", "QGemm"))]
    assert len(convs) == 5 and all(lay["bits"] == "w4" for lay in convs)
    weights = [result.graph.constants[n.inputs[1]] for n in result.graph.nodes
               if n.op in ("QConv", "QGemm")]
    assert all(w.dtype == np.int8 and w.min() >= -8 and w.max() <= 7 for w in weights)
    proc = subprocess.run([sys.executable, "-m", "edgecc", "verify", path],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "verify: PASS" in proc.stdout, proc.stdout + proc.stderr


def _quantize(tmp_path, weight_type, activation_type, opset=None):
    model = onnx.load(DIGITS)
    if opset is not None and opset != model.opset_import[0].version:
        model = onnx.version_converter.convert_version(model, opset)
    src = str(tmp_path / "float.onnx")
    onnx.save(model, src)
    inp = model.graph.input[0]
    shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
    path = str(tmp_path / "quantized.onnx")
    quantize_static(src, path, Reader(inp.name, shape), quant_format=QuantFormat.QDQ,
                    weight_type=weight_type, activation_type=activation_type, per_channel=True)
    return path


@pytest.mark.parametrize("target", ["cortex-m7", "x86-avx2"])
def test_uint8_activations_build_and_verify(target, tmp_path):
    path = _quantize(tmp_path, QuantType.QInt8, QuantType.QUInt8)
    proc = subprocess.run([sys.executable, "-m", "edgecc", "verify", path, "--target", target],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "verify: PASS" in proc.stdout, proc.stdout + proc.stderr
