"""Brevitas -> QONNX -> edgecc (issue 15, first step): a digits CNN trained here with Brevitas'
quantization-aware layers at w4a4, w2a2 and w1a1 (first and last layers 8-bit), exported with
export_qonnx, compiles with no flag and computes what the qonnx package's executor computes.

At w4a4 and w2a2 the quantizers become QuantizeLinear/DequantizeLinear with a clamp to their
levels and the layers run on the integer kernels (Brevitas' BatchNorm folded into the
per-channel weight scales; the 2- and 4-bit layer on bit planes, passes/lower_bits.py): each
layer within 1 LSB of qonnx's float computation (edgecc verify, per layer, on 16 held-out
images), the predicted class the same on all but at most two of 120. At w1a1 the binary layer
runs on signs (XOR + popcount, BatchNorm and bias folded into an integer threshold per
channel), the first and last layers in float: the logits within 1e-4 of the largest on nearly
every image (the binary layer's signs equal qonnx's unless its float sum lands within
rounding of 0).
Held-out accuracy of the float-trained network, of qonnx's executor and of edgecc's build are
printed side by side (pytest -s).
"""
import subprocess
import sys

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
from edgecc.targets.registry import get_target  # noqa: E402

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


def float_network():
    """The same layers in float (no quantizers): the float and int8 builds' network."""
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                         nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, stride=2, bias=False),
                         nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The trained networks' files: QONNX exports at w4a4, w2a2, w1a1, the float network's
    ONNX and the held-out accuracy of its float and int8 (edgecc --quantize int8) builds."""
    work = tmp_path_factory.mktemp("brevitas")
    xtr, ytr, xte, yte = digits()
    out = {}
    for wbits, abits in ((4, 4), (2, 2), (1, 1)):
        torch.manual_seed(wbits)
        model = train(network(wbits, abits), xtr, ytr)
        path = str(work / f"digits_w{wbits}a{abits}.onnx")
        export_qonnx(model, torch.tensor(xte[:1]), export_path=path)
        with torch.no_grad():
            pred = model(torch.tensor(xte[:HELD_OUT])).argmax(1).numpy()
        out[(wbits, abits)] = (path, pred)
    torch.manual_seed(0)
    fmodel = train(float_network(), xtr, ytr)
    fpath = str(work / "digits_float.onnx")
    torch.onnx.export(fmodel, torch.tensor(xte[:1]), fpath, input_names=["x"],
                      output_names=["y"], dynamo=False)
    np.savez(str(work / "calib.npz"), x=xtr[:200])
    acc = {}
    for label, kw in (("float", {}), ("int8", dict(quantize="int8",
                                                   calib=str(work / "calib.npz")))):
        r = compile_model(fpath, "generic", **kw)
        b = build_host(r.files, r.graph, "model", str(work / label), opt="-O1")
        pred = [int(np.argmax(run_host(b, [x[None]])[0])) for x in xte[:HELD_OUT]]
        acc[label] = float(np.mean(np.array(pred) == yte[:HELD_OUT]))
    out["float_int8"] = acc
    return out


@pytest.mark.parametrize("wbits,abits", [(4, 4), (2, 2), (1, 1)])
def test_brevitas_digits_cnn_matches_qonnx(wbits, abits, tmp_path, exports):
    xtr, ytr, xte, yte = digits()
    path, torch_pred = exports[(wbits, abits)]
    result = compile_model(path, "generic")  # no flag
    ops = {n.op for n in result.graph.nodes}
    if abits > 1:  # integer quantizers: the integer kernels (Brevitas' BatchNorm folded in),
        # the middle layer on bit planes (AND + popcount), its input packed by the first
        assert {"QConvPack", "QConvBits"} <= ops and "FakeQuant" not in ops
    else:  # binary: the middle layer on bit planes (XOR + popcount, threshold for the sign)
        assert {"PackBits", "QConvBits"} <= ops and "FakeQuant" not in ops
    build = build_host(result.files, result.graph, "model", str(tmp_path / "b"), sanitize=True,
                       opt="-O1")
    wrapper = ModelWrapper(path).transform(InferShapes())
    name_in = wrapper.graph.input[0].name
    name_out = wrapper.graph.output[0].name
    q_pred, e_pred, close, worst = [], [], 0, 0.0
    for x in xte[:HELD_OUT]:
        want = execute_onnx(wrapper, {name_in: x[None]})[name_out]
        got = run_host(build, [x[None]])[0]
        q_pred.append(int(np.argmax(want)))
        e_pred.append(int(np.argmax(got)))
        err = float(np.max(np.abs(got - want))) / max(float(np.max(np.abs(want))), 1e-6)
        close += err <= 1e-4
        worst = max(worst, err)
    q_pred, e_pred = np.array(q_pred), np.array(e_pred)
    acc = {k: float(np.mean(p == yte[:HELD_OUT]))
           for k, p in (("brevitas", torch_pred), ("qonnx", q_pred), ("edgecc", e_pred))}
    print(f"w{wbits}a{abits}: held-out accuracy over {HELD_OUT}: " +
          ", ".join(f"{k} {v:.3f}" for k, v in acc.items()) +
          f" (the float network's builds: float {exports['float_int8']['float']:.3f}, "
          f"int8 {exports['float_int8']['int8']:.3f})" +
          f"; logits within 1e-4 on {close} of {HELD_OUT}, largest difference {worst:.3g} "
          "of the largest logit")
    assert np.count_nonzero(q_pred != e_pred) <= 2
    if abits == 1:  # float layers around the binary one: equal but for summation order
        assert close >= HELD_OUT - 3
    else:  # integer layers: every layer within 1 LSB of qonnx's (a level apart where the
        # fixed-point requantization and qonnx's float rounding disagree near a level
        # boundary; at 2 bits one level moves a logit a lot, hence no bound on the logits)
        np.savez(str(tmp_path / "images.npz"), **{name_in: xte[:16]})
        proc = subprocess.run([sys.executable, "-m", "edgecc", "verify", path, "--inputs",
                               str(tmp_path / "images.npz")], capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0 and "verify: PASS" in proc.stdout, proc.stdout + proc.stderr
        assert "largest integer difference" in proc.stdout
    assert acc["edgecc"] > 0.5  # trained: far above chance (0.1)


def test_brevitas_trunc_avg_pool_matches_qonnx(tmp_path):
    """Brevitas' TruncAvgPool2d exports AveragePool then Trunc (v2): FakeTrunc (bit for bit:
    tests/test_qonnx.py), after an integer conv: within one output level of qonnx."""
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
    node = next(n for n in wrapper.graph.node if n.op_type == "Trunc")
    step = float(wrapper.get_initializer(node.input[4]))  # the output scale: one level
    rng = np.random.default_rng(7)
    equal = total = 0
    for _ in range(10):
        x = rng.normal(0, 1, (1, 1, 8, 8)).astype(np.float32)
        want = execute_onnx(wrapper, {wrapper.graph.input[0].name: x})[
            wrapper.graph.output[0].name]
        got = run_host(build, [x])[0]
        # the conv before it runs on the integer kernels: a level apart where the fixed-point
        # requantization and qonnx's float rounding disagree near a boundary
        assert np.max(np.abs(got - want)) <= step * (1 + 1e-6)
        equal, total = equal + int(np.count_nonzero(got == want)), total + want.size
    assert equal >= 0.9 * total


def test_w2a2_memory_against_the_int8_build(tmp_path):
    """Issue 15, acceptance 4: the digits CNN at w2a2 against the same network at w8a8 (the
    int8 build): weights (flash) and activations (arena) of the layers between the first and
    the last, which are 8-bit in both, at most 0.3x; the split printed (pytest -s)."""
    from edgecc.analyze import analysis
    split = {}
    for bits in (8, 2):
        torch.manual_seed(0)
        model = network(bits, bits).eval()
        path = str(tmp_path / f"w{bits}.onnx")
        export_qonnx(model, torch.zeros(1, 1, 8, 8), export_path=path)
        result = compile_model(path, "generic")
        g = result.graph
        info = analysis(result)
        macs = [k for k, layer in enumerate(info["layers"]) if layer["macs"]]
        middle = [g.nodes[k] for k in range(macs[0] + 1, macs[-1])
                  if info["layers"][k]["macs"]]
        tensors = {t for n in middle for t in list(n.inputs) + list(n.outputs)
                   if t and t not in g.constants}
        split[bits] = dict(
            weights=sum(int(g.constants[t].nbytes) for n in middle for t in n.inputs
                        if t in g.constants),
            activations=sum(g.types[t].nbytes for t in tensors),
            flash=info["totals"]["weights_flash_bytes"], arena=info["totals"]["arena_bytes"],
            ops=[n.op for n in middle])
    print(f"digits CNN, middle layers {split[2]['ops']} vs {split[8]['ops']}: weights "
          f"{split[2]['weights']} vs {split[8]['weights']} bytes, activations "
          f"{split[2]['activations']} vs {split[8]['activations']} bytes; whole model: flash "
          f"{split[2]['flash']} vs {split[8]['flash']}, arena {split[2]['arena']} vs "
          f"{split[8]['arena']} (first and last layers 8-bit in both)")
    assert split[2]["ops"] == ["QConvBits"] and split[8]["ops"] == ["QConv"]
    assert split[2]["weights"] <= 0.3 * split[8]["weights"]
    assert split[2]["activations"] <= 0.3 * split[8]["activations"]


@pytest.mark.parametrize("target", ["aarch64-neon", "cortex-m7"])
def test_brevitas_exports_on_targets(target, exports, tmp_path):
    """The w2a2 and w1a1 exports on aarch64-neon (under qemu-aarch64) and cortex-m7 (firmware
    under qemu-system-arm): `edgecc verify` with held-out images passes (each layer against
    qonnx; on Cortex-M the firmware's outputs byte-identical with the host build; on aarch64
    the qemu-aarch64 build's outputs byte-identical with the host's portable build)."""
    import shutil
    need = ("qemu-aarch64", "aarch64-linux-gnu-gcc") if target.startswith("aarch64") else \
        ("qemu-system-arm", "arm-none-eabi-gcc")
    if any(shutil.which(t) is None for t in need):
        pytest.skip(f"needs {', '.join(need)}")
    from edgecc.verify import verify_report
    xte = digits()[2]
    name_in = ModelWrapper(exports[(2, 2)][0]).graph.input[0].name
    np.savez(str(tmp_path / "images.npz"), **{name_in: xte[:8]})
    for key in ((2, 2), (1, 1)):
        text, ok = verify_report(exports[key][0], target, str(tmp_path / "images.npz"))
        assert ok, text
        if target == "cortex-m7":
            assert "bit-exact" in text or "byte" in text, text
        else:  # the aarch64 build's outputs byte-identical with the host's portable build
            record = get_target(target)
            host, arm = compile_model(exports[key][0], "generic"), \
                compile_model(exports[key][0], target)
            bh = build_host(host.files, host.graph, "model", str(tmp_path / f"h{key}"))
            ba = build_host(arm.files, arm.graph, "model", str(tmp_path / f"a{key}"),
                            **record.build_options())
            for x in xte[:8]:
                assert run_host(bh, [x[None]])[0].tobytes() == \
                    run_host(ba, [x[None]])[0].tobytes()
