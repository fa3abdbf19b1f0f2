"""The reference models on the aarch64 targets under qemu-aarch64 (issue 14, acceptance 1):
tests/model_zoo.py's five architectures and the bundled digits CNN, float within 1e-4 of
onnxruntime (relative to the largest output) and int8 (onnxruntime's QDQ, conftest.py's zoo)
byte-identical with the portable build of the same model on the host, on random inputs and on
inputs that saturate the int8 activations."""
import os
import shutil

import numpy as np
import pytest

import model_zoo
from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-gcc") is None,
    reason="needs qemu-aarch64 (qemu-user) and aarch64-linux-gnu-gcc")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits", "digits_cnn.onnx")
TARGETS = ("aarch64-neon", "aarch64-neon-dotprod")
MODELS = list(model_zoo.NAMES) + ["digits"]


def _model(name, zoo, tmp_path):
    if name != "digits":
        return zoo(name), model_zoo.INPUT_SHAPES[name]
    from onnx_helpers import quantize_ort
    with np.load(os.path.join(ROOT, "examples", "digits", "calib.npz")) as data:
        x = data[data.files[0]][:8].astype(np.float32).reshape(-1, 1, 8, 8)
    return dict(float=DIGITS, qdq=quantize_ort(DIGITS, str(tmp_path / "digits_qdq.onnx"),
                                               "image", x)), (1, 1, 8, 8)


def _inputs(shape):
    rng = np.random.default_rng(7)
    return [rng.standard_normal(shape).astype(np.float32),
            (rng.choice([-1.0, 1.0], shape) * 1e3).astype(np.float32)]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", MODELS)
def test_reference_model(name, target, zoo, tmp_path):
    import onnxruntime as ort
    paths, shape = _model(name, zoo, tmp_path)
    feeds = _inputs(shape)
    # float: within 1e-4 of onnxruntime
    r = compile_model(paths["float"], target=target)
    assert any(n.op == "ConvNHWC" or n.op == "Gemm" for n in r.graph.nodes)
    build = build_host(r.files, r.graph, "model", str(tmp_path / "float"),
                       **get_target(target).build_options())
    sess = ort.InferenceSession(paths["float"], providers=["CPUExecutionProvider"])
    for x in feeds[:1]:
        got = run_host(build, [x])[0]
        want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want)), name
    # int8: byte-identical with the host's portable build
    q = compile_model(paths["qdq"], target=target)
    assert any(n.op == "QConvNHWC" or n.op == "QGemm" for n in q.graph.nodes)
    neon = build_host(q.files, q.graph, "model", str(tmp_path / "int8"),
                      **get_target(target).build_options())
    g = compile_model(paths["qdq"], target="generic")
    host = build_host(g.files, g.graph, "model", str(tmp_path / "generic"))
    for k, x in enumerate(feeds):
        a, b = run_host(neon, [x], tag=f"n{k}")[0], run_host(host, [x], tag=f"h{k}")[0]
        assert a.tobytes() == b.tobytes(), (name, k)
