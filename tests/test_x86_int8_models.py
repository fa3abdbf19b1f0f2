"""The int8 reference models on x86-avx2 (issue 13, acceptance 1 for int8): tests/model_zoo.py's
five architectures quantized by onnxruntime (QDQ, per-channel QInt8, conftest.py's zoo) and the
trained digits CNN, compiled for x86-avx2 and for generic from the same ONNX file, built with
ASan + UBSan (the x86 build with the target's -mavx2 -mfma), run on random inputs and on
inputs at the extremes (large values saturate the int8 activations: the vpmaddubsw edge): the
outputs must be byte-identical. Every convolution, fully connected layer, add and global
average pool of these models must run on an AVX2 kernel (a silent fallback fails). The x86
build runs for each x86 target the CPU has (X86_TARGETS: x86-avx512-vnni's flags select the
vpdpbusd paths of the same C).
"""
import numpy as np
import pytest
from int8_testlib import layers_of
from onnx_helpers import quantize_ort, trained_digits_onnx
from test_x86_int8_kernels import X86_TARGETS, have_avx2

import model_zoo
from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target

pytestmark = pytest.mark.skipif(not have_avx2(), reason="the CPU lacks AVX2/FMA")
MODELS = list(model_zoo.NAMES) + ["digits"]
INPUT = "image"  # the digits CNN's input


def inputs_for(shape, count=3):
    rng = np.random.default_rng(100)
    out = [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
    out.append((rng.choice([-1.0, 1.0], shape) * 1e3).astype(np.float32))  # saturating
    return out


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("x86_digits")
    float_path = trained_digits_onnx()
    calib = np.load("examples/digits/calib.npz")
    x = calib[list(calib.keys())[0]][:8].astype(np.float32)
    return dict(qdq=quantize_ort(float_path, str(root / "digits_qdq.onnx"), INPUT, x),
                shape=(1,) + x.shape[1:])


@pytest.mark.parametrize("target", X86_TARGETS)
@pytest.mark.parametrize("name", MODELS)
def test_x86_equals_generic(name, target, zoo, digits, tmp_path):
    if name == "digits":
        path, shape = digits["qdq"], digits["shape"]
    else:
        path, shape = zoo(name)["qdq"], model_zoo.INPUT_SHAPES[name]
    x86 = compile_model(path, target=target)
    generic = compile_model(path, target="generic")
    code = x86.files["model.c"]
    taken = {op: sum(1 for n in x86.graph.nodes if n.op == op)
             for op in ("QConvNHWC", "QGemm", "QAdd", "QReduceMean", "MaxPoolNHWC")}
    assert taken["QConvNHWC"] + taken["QGemm"] > 0
    assert not any(n.op in ("QConv", "MaxPool") for n in x86.graph.nodes)  # all NHWC
    markers = {"QConvNHWC": ("multiplied and pair-summed", "taps in"),
               "QGemm": ("vpmaddwd dot products",), "QAdd": ("8 lanes per step",),
               "QReduceMean": ("per channel sum(x)",), "MaxPoolNHWC": ("vpmaxsb over",)}
    for op, count in taken.items():
        assert sum(layers_of(code, m) for m in markers[op]) >= count, op
    feeds = inputs_for(shape)
    b1 = build_host(x86.files, x86.graph, "model", str(tmp_path / "x86"), sanitize=True,
                    opt="-O1", cflags=get_target(target).host_cflags)
    b2 = build_host(generic.files, generic.graph, "model", str(tmp_path / "generic"),
                    sanitize=True, opt="-O1")
    for x in feeds:
        o1, o2 = run_host(b1, [x]), run_host(b2, [x])
        assert all(np.asarray(a).tobytes() == np.asarray(b).tobytes() for a, b in zip(o1, o2))
