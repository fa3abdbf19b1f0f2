"""QOperator-format quantized ONNX (QLinearConv, QGemm, QLinearAdd, ...): import and run.

Models are quantized in the test by onnxruntime's quantize_static (QOperator format; per
channel and per tensor; int8 and uint8 activations), compiled by edgecc and run on the host;
the output is compared with onnxruntime running the same quantized model, in LSB of the
output's scale (onnxruntime requantizes in float, edgecc in fixed point: QUANT.md), through
edgecc.verify.reference: the integer matrix/convolution nodes (QLinearConv, QGemm, MatMulInteger...)
are computed exactly there, since onnxruntime's u8 x s8 kernels saturate on AVX2 without VNNI.
"""
from __future__ import annotations

import collections
import os

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import model_zoo
from onnx_helpers import make_model, rand
from edgecc.compiler import lowering, registry  # noqa: F401  (lowering: registers)
from edgecc.compiler.driver import compile_model
from edgecc.errors import UnsupportedError
from edgecc.runner import build_host, run_host
from edgecc.verify.reference import integer_kernels_exact
from edgecc.verify import reference_run

ort_quant = pytest.importorskip("onnxruntime.quantization")

DIGITS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "examples", "digits")
MODELS = ["digits", "resnet8", "dscnn", "mixed"]
CONFIGS = [(pc, act) for pc in (True, False) for act in ("QInt8", "QUInt8")]
# End to end, in LSB of the output scale: each layer is within 1 LSB of onnxruntime
# (float vs fixed-point requantization); through the mixed model's 12 layers up to 3 add up.
MAX_LSB = 4


def _mixed_float(path):
    """Conv, LeakyRelu, AveragePool, Sigmoid, Concat, Mul, GlobalAveragePool, MatMul, Add:
    every com.microsoft op the quantizer writes, besides QGemm/QLinearSoftmax (the zoo's)."""
    rng = np.random.default_rng(0)
    node = helper.make_node
    nodes = [
        node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        node("LeakyRelu", ["c1"], ["l1"], alpha=0.1),
        node("AveragePool", ["l1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 1, 1, 1]),
        node("Sigmoid", ["p1"], ["s1"]),
        node("Concat", ["p1", "s1"], ["cat"], axis=1),
        node("Conv", ["cat", "w2"], ["c2"]),
        node("Mul", ["cat", "c2"], ["m1"]),
        node("GlobalAveragePool", ["m1"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("MatMul", ["f", "wm"], ["mm"]),
        node("Add", ["mm", "bm"], ["y"]),
    ]
    inits = {"w1": rand(rng, 8, 3, 3, 3), "b1": rand(rng, 8), "w2": rand(rng, 16, 16, 1, 1),
             "wm": rand(rng, 16, 5), "bm": rand(rng, 5)}
    onnx.save(make_model(nodes, [("x", (1, 3, 8, 8))], [("y", (1, 5))], inits), path)


def _float_model(name, path):
    """(float model path, input name, calibration inputs, evaluation inputs)."""
    if name == "digits":
        images = np.load(f"{DIGITS}/heldout.npz")["images"][:, None]
        return f"{DIGITS}/digits_cnn.onnx", "image", images, images
    rng = np.random.default_rng(5)
    if name == "mixed":
        _mixed_float(path)
        shape = (1, 3, 8, 8)
    else:
        model_zoo.build(name, path, seed=0)
        shape = model_zoo.INPUT_SHAPES[name]
    data = rng.standard_normal((24,) + shape).astype(np.float32)
    return path, "x" if name == "mixed" else "input", data[:8], data[8:]


class _Reader(ort_quant.CalibrationDataReader):
    def __init__(self, name, samples):
        self.it = iter([{name: s} for s in samples])

    def get_next(self):
        return next(self.it, None)


@pytest.fixture(scope="module")
def qmodel(tmp_path_factory):
    root = tmp_path_factory.mktemp("qoperator")
    cache = {}

    def get(name, per_channel, act):
        key = (name, per_channel, act)
        if key not in cache:
            src, input_name, calib, evals = _float_model(name, str(root / f"{name}.onnx"))
            out = str(root / f"{name}_{int(per_channel)}_{act}.onnx")
            ort_quant.quantize_static(
                src, out, _Reader(input_name, calib), quant_format=ort_quant.QuantFormat.QOperator,
                per_channel=per_channel, weight_type=ort_quant.QuantType.QInt8,
                activation_type=getattr(ort_quant.QuantType, act))
            cache[key] = (out, evals)
        return cache[key]
    return get


def _op_counts(model):
    return collections.Counter(n.op_type for n in model.graph.node)


def _output_scale(model):
    """Scale of the final DequantizeLinear (the graph output's quantization)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"][-1]
    assert dq.output[0] == model.graph.output[0].name
    return float(inits[dq.input[1]])


@pytest.mark.parametrize("per_channel,act", CONFIGS, ids=[f"{'pc' if p else 'pt'}-{a}"
                                                            for p, a in CONFIGS])
@pytest.mark.parametrize("name", MODELS)
def test_qoperator_matches_onnxruntime(name, per_channel, act, qmodel, tmp_path):
    path, inputs = qmodel(name, per_channel, act)
    model = onnx.load(path)
    result = compile_model(path)
    g = result.graph
    ops = collections.Counter(n.op for n in g.nodes)
    want = _op_counts(model)
    assert ops["QConv"] == want["QLinearConv"] > 0
    assert ops["QGemm"] == want["QGemm"] + want["QLinearMatMul"] > 0
    build = build_host(result.files, g, result.prefix, str(tmp_path), sanitize=True, opt="-O1")
    scale = _output_scale(model)
    worst, agree = 0.0, 0
    for x in inputs:
        (got,) = run_host(build, [x])
        ref = reference_run(model, {g.inputs[0]: x})[g.outputs[0]]
        worst = max(worst, float(np.abs(got.astype(np.float64) - ref).max()) / scale)
        agree += int(np.argmax(got) == np.argmax(ref))
    print(f"{name} {act} per_channel={per_channel}: max diff {worst:.2f} LSB, "
          f"top-1 {agree}/{len(inputs)}")
    assert worst <= MAX_LSB + 1e-3
    assert agree >= len(inputs) - (0 if name == "digits" else 1)


@pytest.mark.parametrize("name", MODELS)
def test_every_layer_is_integer(name, qmodel):
    """Every layer of a QOperator model (Conv, Gemm/MatMul, Add, Mul, pools, Concat,
    activations, Softmax) becomes an integer op: only the graph output's DQ is float."""
    for per_channel, act in CONFIGS:
        g = compile_model(qmodel(name, per_channel, act)[0]).graph
        left = [f"{n.name} ({n.op})" for n in g.nodes
                if g.types[n.outputs[0]].dtype.is_float and n.outputs[0] not in g.outputs]
        assert not left, f"{name} {act} per_channel={per_channel}: left in float: {left}"


def test_every_contrib_lowering_is_exercised(qmodel):
    """The com.microsoft lowerings are covered here (there are no ONNX node tests for them)."""
    contrib = {k.split(".", 2)[2] for k in registry.LOWERINGS if k.startswith("com.microsoft.")}
    seen = set()
    for name in MODELS:
        seen |= set(_op_counts(onnx.load(qmodel(name, True, "QInt8")[0])))
    assert contrib <= seen, f"not exercised: {sorted(contrib - seen)}"


# -- ConvInteger, MatMulInteger, DynamicQuantizeLinear, errors ------------------------------

def _model(nodes, inputs, outputs, inits=None, domain=""):
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info(n, e, s) for n, e, s in inputs],
        [helper.make_tensor_value_info(n, e, s) for n, e, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _run_both(model, feed, tmp_path):
    result = compile_model("m.onnx", model=model)
    g = result.graph
    build = build_host(result.files, g, result.prefix, str(tmp_path), sanitize=True, opt="-O1")
    (got,) = run_host(build, [feed[n] for n in g.inputs])
    ref = reference_run(model, feed)[model.graph.output[0].name]
    return got, ref, g


def test_conv_integer_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.integers(0, 256, (6, 3, 3, 3), dtype=np.uint8)
    model = _model([helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"],
                                     pads=[1, 0, 1, 0], strides=[2, 1])],
                   [("x", TensorProto.UINT8, (1, 3, 9, 7))],
                   [("y", TensorProto.INT32, (1, 6, 5, 5))],
                   {"w": w, "xz": np.uint8(121), "wz": np.uint8(130)})
    x = rng.integers(0, 256, (1, 3, 9, 7), dtype=np.uint8)
    got, ref, g = _run_both(model, {"x": x}, tmp_path)
    np.testing.assert_array_equal(got, ref)
    assert {n.op for n in g.nodes} >= {"Conv"} and g.types[g.outputs[0]].dtype.name == "INT32"


def test_matmul_integer_per_column_zero_point_is_exact(tmp_path):
    rng = np.random.default_rng(2)
    model = _model([helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])],
                   [("a", TensorProto.UINT8, (4, 16))], [("y", TensorProto.INT32, (4, 5))],
                   {"b": rng.integers(-128, 128, (16, 5), dtype=np.int8), "az": np.uint8(3),
                    "bz": rng.integers(-4, 4, (5,), dtype=np.int8)})
    a = rng.integers(0, 256, (4, 16), dtype=np.uint8)
    got, ref, _ = _run_both(model, {"a": a}, tmp_path)
    np.testing.assert_array_equal(got, ref)  # the exact reference (reference.py)
    b = numpy_helper.to_array(model.graph.initializer[0]).astype(np.int64)
    bz = numpy_helper.to_array(model.graph.initializer[2]).astype(np.int64)
    np.testing.assert_array_equal(got, (a.astype(np.int64) - 3) @ (b - bz))
    if integer_kernels_exact():  # onnxruntime saturates u8 x s8 pair sums without VNNI
        np.testing.assert_array_equal(got, onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"a": a})[0])


def test_dynamic_quantize_linear_of_a_constant_folds(tmp_path):
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["bf"], ["bq", "bs", "bz"]),
             helper.make_node("MatMulInteger", ["a", "bq", "", "bz"], ["y"])]
    model = _model(nodes, [("a", TensorProto.UINT8, (2, 8))], [("y", TensorProto.INT32, (2, 3))],
                   {"bf": rand(rng, 8, 3)})
    a = rng.integers(0, 256, (2, 8), dtype=np.uint8)
    got, ref, g = _run_both(model, {"a": a}, tmp_path)
    np.testing.assert_array_equal(got, ref)
    assert "DynamicQuantizeLinear" not in {n.op for n in g.nodes}


def test_dynamic_quantize_linear_of_a_runtime_tensor_is_an_error():
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"], name="dql")
    model = _model([node], [("x", TensorProto.FLOAT, (2, 3))],
                   [("y", TensorProto.UINT8, (2, 3)), ("s", TensorProto.FLOAT, ()),
                    ("z", TensorProto.UINT8, ())])
    with pytest.raises(UnsupportedError, match=r"node 'dql' \(DynamicQuantizeLinear, opset 17\)"
                                               r".*compile-time constant"):
        compile_model("m.onnx", model=model)


def _contrib_pool_model(op, domain, **attrs):
    node = helper.make_node(op, ["x", "s", "z", "s", "z"], ["y"], name="pool", domain=domain,
                            **attrs)
    return _model([node], [("x", TensorProto.UINT8, (1, 4, 3, 3))],
                  [("y", TensorProto.UINT8, (1, 4, 1, 1))],
                  {"s": np.float32(0.1), "z": np.uint8(128)}, domain=domain)


def test_contrib_errors_name_node_op_and_opset():
    m = _contrib_pool_model("QLinearGlobalAveragePool", "com.microsoft", channels_last=1)
    with pytest.raises(UnsupportedError, match=r"node 'pool' \(QLinearGlobalAveragePool, "
                                               r"opset 17\): channels_last=1"):
        compile_model("m.onnx", model=m)
    m = _contrib_pool_model("QLinearReduceMean", "com.microsoft")
    with pytest.raises(UnsupportedError, match=r"node 'pool' \(QLinearReduceMean, opset 17\): "
                                               r"unsupported op$"):
        compile_model("m.onnx", model=m)
    m = _contrib_pool_model("QLinearGlobalAveragePool", "example.custom")
    with pytest.raises(UnsupportedError, match=r"unsupported op domain 'example.custom'"):
        compile_model("m.onnx", model=m)
