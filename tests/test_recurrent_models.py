"""Recurrent layers (RNN, GRU, LSTM; issue 16, acceptance 2).

What the ONNX node tests leave out, against onnxruntime: runtime sequence lengths (0, partial,
full) in every direction, clip, the optional activations with their alpha and beta,
linear_before_reset, input_forget, peepholes, initial states and each optional output; and
against the op's numpy reference (onnxruntime has neither): layout 1 and double.

Then small keyword-spotting models in torch (MFCC-like input [1, 49, 10] -> GRU or LSTM with
64 hidden units -> Linear 12, random weights, fixed seed), exported with both of torch's
exporters, compiled and run (-Wall -Wextra -Werror -pedantic, ASan + UBSan) within 1e-4 of
onnxruntime; a Conv (no bias) + BatchNorm2d + ReLU exported with dynamo=True, optimize=False
(CastLike and Expand around the convolution's bias); and onnxruntime's QDQ quantization of the
keyword-spotting models: its static quantizer leaves the recurrent layer float (torch's new
exporter's weight slices get Q/DQ pairs, which edgecc folds into float constants), the
classifier becomes an int8 QGemm, the output is within 1 LSB of onnxruntime's, and
``edgecc analyze`` names why the recurrent layer stays float.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.analyze import analysis, format_table
from edgecc.compiler.driver import compile_model
from edgecc.ir.ops import op_info
from edgecc.runner import build_host, run_host
from edgecc.verify import compare, reference_run

T, N, I, H = 5, 3, 4, 6          # steps, batch, input size, hidden size of the ONNX cases
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
STEPS, FEATURES, HIDDEN, CLASSES = 49, 10, 64, 12


def _run(model: onnx.ModelProto, feed, tmp_path, name="model"):
    """Compile, build under the sanitizers, run: (result, {output name: array})."""
    result = compile_model(f"{name}.onnx", model=model)
    g = result.graph
    build = build_host(result.files, g, result.prefix, str(tmp_path), sanitize=True, opt="-O1")
    outs = run_host(build, [feed[n] for n in g.inputs])
    return result, dict(zip(g.outputs, outs))


class Layers:
    """An ONNX graph of recurrent nodes sharing X, sequence lengths and initial states, each
    with its own random weights (initializers) and every output it lists a graph output."""

    def __init__(self, dtype=np.float32, layout=0, seed=0):
        self.rng = np.random.default_rng(seed)
        self.dtype, self.layout = dtype, layout
        self.elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        self.nodes, self.inits, self.outputs = [], [], []
        x_shape = (N, T, I) if layout else (T, N, I)
        self.feed = {"X": self.rng.standard_normal(x_shape).astype(dtype),
                     "lens": np.array([T, 0, 3], np.int32)}
        self.inputs = [helper.make_tensor_value_info("X", self.elem, x_shape),
                       helper.make_tensor_value_info("lens", TensorProto.INT32, (N,))]

    def state(self, name, directions):
        shape = (N, directions, H) if self.layout else (directions, N, H)
        self.feed[name] = self.rng.standard_normal(shape).astype(self.dtype)
        self.inputs.append(helper.make_tensor_value_info(name, self.elem, shape))
        return name

    def add(self, op, outputs=("Y", "Y_h", "Y_c"), lens=True, initial=True, peepholes=False,
            **attrs):
        k = len(self.nodes)
        D = 2 if attrs.get("direction") == "bidirectional" else 1
        G = GATES[op]
        weights = {"W": (D, G * H, I), "R": (D, G * H, H), "B": (D, 2 * G * H)}
        if peepholes:
            weights["P"] = (D, 3 * H)
        for role, shape in weights.items():
            value = (0.5 * self.rng.standard_normal(shape)).astype(self.dtype)
            self.inits.append(numpy_helper.from_array(value, f"{role}{k}"))
        ins = ["X", f"W{k}", f"R{k}", f"B{k}", "lens" if lens else "",
               self.state(f"h{k}", D) if initial else ""]
        if op == "LSTM":
            ins += [self.state(f"c{k}", D) if initial else "", f"P{k}" if peepholes else ""]
        names = ["Y", "Y_h", "Y_c"][:3 if op == "LSTM" else 2]
        outs = [f"{o}{k}" if o in outputs else "" for o in names]
        if self.layout:
            attrs["layout"] = 1
        self.nodes.append(helper.make_node(op, ins, outs, hidden_size=H, **attrs))
        state = (N, D, H) if self.layout else (D, N, H)
        y = (N, T, D, H) if self.layout else (T, D, N, H)
        self.outputs += [helper.make_tensor_value_info(o, self.elem, y if o[1] != "_" else state)
                         for o in outs if o]

    def model(self, opset=22):
        graph = helper.make_graph(self.nodes, "recurrent", self.inputs, self.outputs,
                                  self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        onnx.checker.check_model(m, full_check=True)
        return m


def test_spec_features_match_onnxruntime(tmp_path):
    lay = Layers()
    lay.add("RNN", direction="reverse", clip=0.8, activations=["Relu"])
    lay.add("RNN", direction="bidirectional", activations=["Affine", "LeakyRelu"],
            activation_alpha=[0.5, 0.2], activation_beta=[0.1], outputs=("Y_h",))
    lay.add("GRU", direction="bidirectional", linear_before_reset=1, clip=0.6)
    lay.add("GRU", direction="reverse", activations=["HardSigmoid", "Softsign"],
            activation_alpha=[0.3], activation_beta=[0.4], initial=False, outputs=("Y",))
    lay.add("LSTM", direction="bidirectional", peepholes=True, input_forget=1, clip=0.9)
    lay.add("LSTM", activations=["HardSigmoid", "ScaledTanh", "Softplus"],
            activation_alpha=[0.25, 1.5], activation_beta=[0.5, 0.8], outputs=("Y_c",))
    lay.add("LSTM", direction="reverse", activations=["Sigmoid", "Elu", "ThresholdedRelu"],
            activation_alpha=[0.7, 0.1], peepholes=True, lens=False, outputs=("Y", "Y_h"))
    lay.add("GRU", lens=False, initial=False)
    model = lay.model()
    _, got = _run(model, lay.feed, tmp_path)
    want = reference_run(model, lay.feed)
    for name in got:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)
    assert not got["Y_h1"][:, 1].any()  # sequence length 0: zero states, as onnxruntime
    assert not got["Y0"][3:, :, 2].any()  # steps past a sequence's length: zero outputs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchwise_layout_and_double_match_reference(dtype, tmp_path):
    """layout 1 (and float64): onnxruntime refuses both, so the op's numpy reference is the
    check (the first test ties that reference's layout-0 semantics to onnxruntime)."""
    lay = Layers(dtype=dtype, layout=1, seed=1)
    lay.add("RNN", direction="bidirectional")
    lay.add("GRU", direction="bidirectional", clip=0.7)
    lay.add("LSTM", direction="reverse", peepholes=True)
    model = lay.model()
    result, got = _run(model, lay.feed, tmp_path)
    g = result.graph
    for node in g.nodes:
        xs = [lay.feed[i] if i in lay.feed else g.constants[i] for i in node.inputs if i]
        want = op_info(node.op).reference(node, xs)
        for out, ref in zip(node.outputs, want):
            if out in got:
                np.testing.assert_allclose(got[out], ref, rtol=1e-5, atol=1e-5, err_msg=out)
    assert got["Y0"].shape == (N, T, 2, H) and got["Y_h0"].shape == (N, 2, H)


def test_reference_matches_onnxruntime():
    """The numpy reference (constant folding's) against onnxruntime on the layout-0 cases."""
    lay = Layers(seed=2)
    lay.add("GRU", direction="bidirectional", linear_before_reset=1, clip=0.6)
    lay.add("LSTM", direction="bidirectional", peepholes=True, clip=0.9)
    model = lay.model()
    result = compile_model("model.onnx", model=model)
    g = result.graph
    want = reference_run(model, lay.feed)
    for node in g.nodes:
        xs = [lay.feed[i] if i in lay.feed else g.constants[i] for i in node.inputs if i]
        for out, ref in zip(node.outputs, op_info(node.op).reference(node, xs)):
            if out in want:
                np.testing.assert_allclose(ref, want[out], rtol=1e-5, atol=1e-5, err_msg=out)


# -- torch models ----------------------------------------------------------------------------

def _kws(kind: str):
    import torch
    from torch import nn

    class KeywordSpotter(nn.Module):
        def __init__(self):
            super().__init__()
            cell = nn.GRU if kind == "gru" else nn.LSTM
            self.rnn = cell(FEATURES, HIDDEN, batch_first=True)
            self.fc = nn.Linear(HIDDEN, CLASSES)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.fc(y[:, -1])

    torch.manual_seed(0)
    return KeywordSpotter().eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """exported(kind, dynamo) -> path of the keyword-spotting model, exported once."""
    torch = pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("recurrent")
    cache = {}

    def get(kind, dynamo):
        if (kind, dynamo) not in cache:
            path = str(root / f"kws_{kind}_{'dynamo' if dynamo else 'torchscript'}.onnx")
            x = torch.randn(1, STEPS, FEATURES, generator=torch.Generator().manual_seed(1))
            torch.onnx.export(_kws(kind), (x,), path, dynamo=dynamo, input_names=["input"],
                              output_names=["logits"])
            onnx.save(onnx.load(path), path)  # the new exporter's external data inline
            cache[kind, dynamo] = path
        return cache[kind, dynamo]
    return get


def _input(seed=3):
    return np.random.default_rng(seed).standard_normal((1, STEPS, FEATURES)).astype(np.float32)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_keyword_spotting_float(kind, dynamo, exported, tmp_path):
    path = exported(kind, dynamo)
    feed = {"input": _input()}
    result, got = _run(onnx.load(path), feed, tmp_path, f"kws_{kind}")
    assert kind.upper() in [n.op for n in result.graph.nodes]
    want = reference_run(onnx.load(path), feed)["logits"]
    c = compare("logits", got["logits"], want, 1e-4)
    assert c.ok, f"max error {c.max_rel:.2e} x max|ref|"


def test_conv_batchnorm_dynamo_unoptimized(tmp_path):
    """torch's new exporter without its optimizer: a bias-less Conv gets its zero bias through
    CastLike and Expand, ahead of an unfolded BatchNormalization."""
    torch = pytest.importorskip("torch")
    from torch import nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                        nn.ReLU()).eval()
    with torch.no_grad():
        net[1].running_mean.normal_(0, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    path = str(tmp_path / "conv_bn_relu.onnx")
    torch.onnx.export(net, (torch.randn(1, 3, 16, 16),), path, dynamo=True, optimize=False,
                      input_names=["input"], output_names=["out"])
    model = onnx.load(path)
    assert {"CastLike", "Expand", "BatchNormalization"} <= {n.op_type for n in model.graph.node}
    feed = {"input": np.random.default_rng(4).standard_normal((1, 3, 16, 16)).astype(np.float32)}
    _, got = _run(model, feed, tmp_path, "conv_bn_relu")
    c = compare("out", got["out"], reference_run(model, feed)["out"], 1e-4)
    assert c.ok, f"max error {c.max_rel:.2e} x max|ref|"


@pytest.mark.parametrize("kind,dynamo", [("gru", True), ("lstm", False)],
                         ids=["gru-dynamo", "lstm-torchscript"])
def test_keyword_spotting_int8_qdq(kind, dynamo, exported, tmp_path):
    from onnx_helpers import quantize_ort
    calib = np.random.default_rng(0).standard_normal((8, STEPS, FEATURES)).astype(np.float32)
    path = quantize_ort(exported(kind, dynamo), str(tmp_path / f"kws_{kind}_qdq.onnx"),
                        "input", calib)
    model = onnx.load(path)
    feed = {"input": _input()}
    result, got = _run(model, feed, tmp_path, f"kws_{kind}_qdq")
    g = result.graph
    ops = [n.op for n in g.nodes]
    assert "QGemm" in ops and kind.upper() in ops, ops
    rnn = next(n for n in g.nodes if n.op == kind.upper())
    # the weights (Q/DQ'd slices with the dynamo export) are float constants in flash
    assert all(g.is_constant(i) for i in rnn.inputs[1:4] if i)
    info = analysis(result)
    assert info["totals"]["float_reasons"][rnn.name] == f"no int8 kernel for {kind.upper()}"
    assert f"no int8 kernel for {kind.upper()}: {rnn.name}" in format_table(info)
    # the output is DequantizeLinear(int8): within one step of onnxruntime's
    step = float(next(n for n in g.nodes if n.op == "DequantizeLinear"
                      and n.outputs[0] == "logits").attrs.quant.scale[0])
    want = reference_run(model, feed)["logits"]
    assert np.max(np.abs(got["logits"] - want)) <= step * 1.001
