"""The model zoo builds match the MAC counts of /work/shared/MODELS.md and onnxruntime matches torch."""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_zoo  # noqa: E402

EXPECTED_MACS = {
    "resnet8": 12.50e6,
    "dscnn": 2.66e6,
    "mobilenetv1_025": 7.49e6,
    "autoencoder": 0.26e6,
    "mobilenetv2_035": 27e6,
}


def test_names_and_shapes():
    assert sorted(model_zoo.NAMES) == sorted(EXPECTED_MACS)
    assert set(model_zoo.INPUT_SHAPES) == set(model_zoo.NAMES) | set(model_zoo.EDGE_NAMES)


@pytest.mark.parametrize("name", model_zoo.NAMES + model_zoo.EDGE_NAMES)
def test_build(name, tmp_path):
    """MACs as MODELS.md gives them (the five reference models), and onnxruntime's output
    equal to torch's (all, the model_zoo_edge.py architectures too)."""
    path = model_zoo.build(name, str(tmp_path / f"{name}.onnx"), seed=0)
    macs = model_zoo.count_macs(path)
    if name in EXPECTED_MACS:
        assert abs(macs - EXPECTED_MACS[name]) <= 0.05 * EXPECTED_MACS[name], macs

    x = model_zoo.example_input(name, seed=3)
    with torch.no_grad():
        ref = model_zoo.make_model(name, seed=0)(x).numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = sess.run(["output"], {"input": x.numpy()})[0]
    assert out.shape == ref.shape == (1,) + ref.shape[1:]
    assert np.abs(out - ref).max() < 1e-4


def test_deterministic(tmp_path):
    a = model_zoo.build("dscnn", str(tmp_path / "a.onnx"), seed=5)
    b = model_zoo.build("dscnn", str(tmp_path / "b.onnx"), seed=5)
    c = model_zoo.build("dscnn", str(tmp_path / "c.onnx"), seed=6)
    assert open(a, "rb").read() == open(b, "rb").read()
    assert open(a, "rb").read() != open(c, "rb").read()


def test_keep_bn(tmp_path):
    path = model_zoo.build("resnet8", str(tmp_path / "r.onnx"), keep_bn=True)
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert ops.count("BatchNormalization") == 7
    x = model_zoo.example_input("resnet8", seed=3)
    with torch.no_grad():
        ref = model_zoo.make_model("resnet8")(x).numpy()
    out = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert np.abs(out - ref).max() < 1e-4
