"""Brevitas -> QONNX -> edgecc (issue 15, first step): a digits CNN trained here with Brevitas'
quantization-aware layers at w4a4, w2a2 and w1a1 (first and last layers 8-bit), exported with
export_qonnx, compiles with no flag and computes what the qonnx package's executor computes.

The layers between the quantizers still run in float (FakeQuant, tests/test_qonnx.py): the
quantizers equal qonnx's bit for bit; a float Conv or Gemm sum in another order than
onnxruntime's (qonnx runs standard nodes with it) can put a value that lies within float
rounding of a level boundary one level apart, so the check is: every logit within 1e-4 of the
largest on nearly every image, the same predicted class on every image but at most one.
Held-out accuracy of the float-trained network, of qonnx's executor and of edgecc's build are
printed side by side (pytest -s).
"""
import numpy as np
import pytest

import brevitas.nn as qnn
import torch
from brevitas.export import export_qonnx  # noqa: E402
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from edgecc.compiler.driver import compile_model  # noqa: E402
from edgecc.runner import build_host, run_host  # noqa: E402

nn = torch.nn
TRAIN = 1400
HELD_OUT = 120  # images compared (of the 397 held out)


def digits():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return x[:TRAIN], d.target[:TRAIN], x[TRAIN:], d.target[TRAIN:]


def network(wbits: int, abits: int):
    """8-bit input and first conv, 8-bit classifier; the middle conv at wbits, activations at
    abits (1: signed binary weights and activations, XNOR-Net style)."""
    if abits == 1:
        act = lambda: qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst,  # noqa: E731
                                        return_quant_tensor=True)
    else:
        act = lambda: qnn.QuantReLU(bit_width=abits, return_quant_tensor=True)  # noqa: E731
    middle = (dict(weight_quant=SignedBinaryWeightPerTensorConst) if wbits == 1
              else dict(weight_bit_width=wbits))
    return nn.Sequential(
        qnn.QuantIdentity(bit_width=8, return_quant_tensor=True),
        qnn.QuantConv2d(1, 16, 3, padding=1, weight_bit_width=8, bias=False),
        nn.BatchNorm2d(16), act(),
        qnn.QuantConv2d(16, 16, 3, padding=1, stride=2, bias=False, **middle),
        nn.BatchNorm2d(16), act(),
        nn.Flatten(),
        qnn.QuantLinear(16 * 4 * 4, 10, weight_bit_width=8, bias=True))


def train(model, x, y, epochs=15):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for _ in range(epochs):
        for i in range(0, len(x), 100):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[i:i + 100]), yt[i:i + 100]).backward()
            opt.step()
    return model.eval()


@pytest.mark.parametrize("wbits,abits", [(4, 4), (2, 2), (1, 1)])
def test_brevitas_digits_cnn_matches_qonnx(wbits, abits, tmp_path):
    torch.manual_seed(wbits)
    xtr, ytr, xte, yte = digits()
    model = train(network(wbits, abits), xtr, ytr)
    path = str(tmp_path / f"digits_w{wbits}a{abits}.onnx")
    export_qonnx(model, torch.tensor(xte[:1]), export_path=path)
    result = compile_model(path, "generic")  # no flag
    assert any(n.op == "FakeQuant" for n in result.graph.nodes)
    build = build_host(result.files, result.graph, "model", str(tmp_path / "b"), sanitize=True,
                       opt="-O1")
    wrapper = ModelWrapper(path).transform(InferShapes())
    name_in = wrapper.graph.input[0].name
    name_out = wrapper.graph.output[0].name
    with torch.no_grad():
        torch_pred = model(torch.tensor(xte[:HELD_OUT])).argmax(1).numpy()
    q_pred, e_pred, close = [], [], 0
    for x in xte[:HELD_OUT]:
        want = execute_onnx(wrapper, {name_in: x[None]})[name_out]
        got = run_host(build, [x[None]])[0]
        q_pred.append(int(np.argmax(want)))
        e_pred.append(int(np.argmax(got)))
        close += bool(np.max(np.abs(got - want)) <= 1e-4 * max(float(np.max(np.abs(want))), 1e-6))
    q_pred, e_pred = np.array(q_pred), np.array(e_pred)
    acc = {k: float(np.mean(p == yte[:HELD_OUT]))
           for k, p in (("brevitas", torch_pred), ("qonnx", q_pred), ("edgecc", e_pred))}
    print(f"w{wbits}a{abits}: held-out accuracy over {HELD_OUT}: " +
          ", ".join(f"{k} {v:.3f}" for k, v in acc.items()) +
          f"; logits within 1e-4 on {close} of {HELD_OUT}")
    assert np.count_nonzero(q_pred != e_pred) <= 1
    assert close >= HELD_OUT - 3
    assert acc["edgecc"] > 0.5  # trained: far above chance (0.1)


def test_brevitas_trunc_avg_pool_matches_qonnx(tmp_path):
    """Brevitas' TruncAvgPool2d exports AveragePool then Trunc (v2): FakeTrunc, bit for bit."""
    torch.manual_seed(7)
    model = nn.Sequential(
        qnn.QuantIdentity(bit_width=8, return_quant_tensor=True),
        qnn.QuantConv2d(1, 4, 3, weight_bit_width=4, bias=False),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        qnn.TruncAvgPool2d(kernel_size=2, stride=2, bit_width=4, float_to_int_impl_type="FLOOR"),
        nn.Flatten()).eval()
    path = str(tmp_path / "trunc.onnx")
    export_qonnx(model, torch.randn(1, 1, 8, 8), export_path=path)
    result = compile_model(path, "generic")
    assert any(n.op == "FakeTrunc" for n in result.graph.nodes)
    build = build_host(result.files, result.graph, "model", str(tmp_path / "b"), sanitize=True,
                       opt="-O1")
    wrapper = ModelWrapper(path).transform(InferShapes())
    rng = np.random.default_rng(7)
    for _ in range(10):
        x = rng.normal(0, 1, (1, 1, 8, 8)).astype(np.float32)
        want = execute_onnx(wrapper, {wrapper.graph.input[0].name: x})
        got = run_host(build, [x])[0]
        np.testing.assert_array_equal(got, want[wrapper.graph.output[0].name])
