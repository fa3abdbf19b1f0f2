"""The reference architectures, exported from torch with non-trivial BatchNorm statistics,
compiled, built with -Wall -Wextra -Werror -pedantic under ASan and UBSan, run, and compared
with onnxruntime: every output element within 1e-4 * max|onnxruntime output|."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import model_zoo
from edgecc.analyze import analysis
from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host
from edgecc.verify import compare, reference_run

TOL = 1e-4


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    cache = {}

    def get(name, keep_bn=True):
        key = (name, keep_bn)
        if key not in cache:
            cache[key] = model_zoo.build(name, str(root / f"{name}_{int(keep_bn)}.onnx"),
                                         seed=1, keep_bn=keep_bn)
        return cache[key]
    return get


@pytest.mark.parametrize("keep_bn", [True, False], ids=["bn-nodes", "bn-prefolded"])
@pytest.mark.parametrize("name", model_zoo.NAMES)
def test_model_matches_onnxruntime(name, keep_bn, zoo, tmp_path):
    if name == "mobilenetv2_035" and not keep_bn:
        pytest.skip("covered by the bn-nodes variant; saves a 20 s sanitizer build")
    path = zoo(name, keep_bn)
    result = compile_model(path)
    g = result.graph
    assert "BatchNormalization" not in [n.op for n in g.nodes], "BN should be folded"
    rng = np.random.default_rng(7)
    x = rng.standard_normal(model_zoo.INPUT_SHAPES[name]).astype(np.float32)
    build = build_host(result.files, g, result.prefix, str(tmp_path), sanitize=True, opt="-O1")
    (got,) = run_host(build, [x])
    ref = reference_run(onnx.load(path), {g.inputs[0]: x})[g.outputs[0]]
    c = compare(g.outputs[0], got, ref, TOL)
    assert c.ok, f"{name}: max error {c.max_rel:.2e} x max|ref| > {TOL}"
    assert c.cosine > 0.99999


def test_generated_c_is_byte_identical(zoo):
    path = zoo("resnet8")
    assert compile_model(path).files == compile_model(path).files


def test_mobilenetv2_arena_near_lower_bound(zoo):
    info = analysis(compile_model(zoo("mobilenetv2_035")))
    t = info["totals"]
    print(f"MobileNetV2-0.35@144 float: arena {t['arena_bytes']} B, "
          f"lower bound {t['lower_bound_bytes']} B, ratio {t['arena_over_lower_bound']}")
    assert t["lower_bound_bytes"] <= t["arena_bytes"] <= 1.1 * t["lower_bound_bytes"]
    assert abs(t["macs"] - 26_660_752) / 26_660_752 < 0.01
