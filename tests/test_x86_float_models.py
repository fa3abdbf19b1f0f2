"""The reference models compiled for x86-avx2 (float): every convolution, fully connected
layer and global average runs on an x86 kernel (backends/x86/float_*.py), the residual adds
fuse into the convolutions, and the program, built with -mavx2 -mfma under ASan and UBSan,
matches onnxruntime within 1e-4 * max|onnxruntime output| (issue 13, acceptance 1)."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from test_x86_float_kernels import pytestmark, x86_layers  # noqa: F401  (pytestmark: AVX2, FMA)

from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target
from edgecc.verify import compare, reference_run

TOL = 1e-4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits", "digits_cnn.onnx")
# what the x86 float kernels compute -> a phrase of their layer functions' comment
X86_OPS = {"ConvNHWC": "AVX2 + FMA", "Gemm": "fully connected", "MatMul": "fully connected",
           "ReduceMean": "mean over"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("x86_zoo")
    cache = {}

    def get(name):
        if name == "digits_cnn":
            return DIGITS
        if name not in cache:
            import model_zoo  # torch: only here
            cache[name] = model_zoo.build(name, str(root / f"{name}.onnx"), seed=0)
        return cache[name]
    return get


@pytest.mark.parametrize("name", ["resnet8", "dscnn", "mobilenetv1_025", "autoencoder",
                                  "mobilenetv2_035", "digits_cnn"])
def test_model_matches_onnxruntime(name, models, tmp_path):
    path = models(name)
    result = compile_model(path, target="x86-avx2")
    g = result.graph
    ops = [n.op for n in g.nodes]
    assert not {"Conv", "Add", "AveragePool"} & set(ops), ops
    for op, marker in X86_OPS.items():  # each such layer is an x86 kernel, not portable C
        x86_layers(result, op, marker)
    x = np.random.default_rng(7).standard_normal(g.types[g.inputs[0]].shape).astype(np.float32)
    build = build_host(result.files, g, result.prefix, str(tmp_path), sanitize=True, opt="-O1",
                       cflags=get_target("x86-avx2").host_cflags)
    (got,) = run_host(build, [x])
    ref = reference_run(onnx.load(path), {g.inputs[0]: x})[g.outputs[0]]
    c = compare(g.outputs[0], got, ref, TOL)
    assert c.ok, f"{name}: max error {c.max_rel:.2e} x max|ref| > {TOL}"
