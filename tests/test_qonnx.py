"""QONNX import (issue 15, first step): Quant and BipolarQuant as FakeQuant, float32 step by step.

References: the qonnx package (pinned in the test dependencies): its int_quant / binary_quant
for the op itself, its executor (qonnx.core.onnx_exec.execute_onnx) for whole models.
"""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.general.bipolar_quant import binary_quant
from qonnx.custom_op.general.intquant import int_quant
from qonnx.custom_op.general.trunc import trunc_v1, trunc_v2
from qonnx.transformation.infer_shapes import InferShapes

from edgecc.compiler.driver import compile_model
from edgecc.errors import EdgeccError
from edgecc.ir.ops.fake_quant import (ROUNDING, FakeQuantAttrs, fake_quant, fake_trunc, levels,
                                      trunc_constants)
from edgecc.runner import build_host, run_host
from onnx_helpers import qonnx_cnn

D = "qonnx.custom_op.general"


def edge_values(rng, shape, scale, zero_point):
    """Random values with exact ties (x / scale + zp a half integer), zeros, +-Inf and NaN."""
    x = rng.normal(0, 6, shape).astype(np.float32) * scale
    flat = x.reshape(-1)
    n = flat.size
    ties = rng.integers(-20, 20, n // 4).astype(np.float32) + np.float32(0.5)
    flat[: n // 4] = ((ties - np.broadcast_to(zero_point, x.shape).reshape(-1)[: n // 4])
                      * np.broadcast_to(scale, x.shape).reshape(-1)[: n // 4])
    flat[-4:] = [0.0, np.inf, -np.inf, np.nan]
    return x


@pytest.mark.parametrize("rounding", sorted(ROUNDING))
def test_fake_quant_equals_qonnx_int_quant(rounding):
    rng = np.random.default_rng(15)
    for bits in (1, 2, 3, 4, 8):
        for signed in (True, False):
            for narrow in (False, True):
                if bits == 1 and narrow:
                    continue
                scale = rng.uniform(0.01, 0.5, (1, 4, 1, 1)).astype(np.float32)
                zp = (np.float32(0.0) if signed else
                      rng.integers(0, 2, (1, 4, 1, 1)).astype(np.float32))
                x = edge_values(rng, (2, 4, 5, 3), scale, zp)
                want = int_quant(x, scale, zp, np.float32(bits), signed, narrow,
                                 "DOWN" if rounding == "ROUND_TO_ZERO" else rounding)
                lo, hi = levels(bits, signed, narrow)
                kind = "sign1" if bits == 1 and signed else "int"
                got = fake_quant(x, scale, zp, FakeQuantAttrs(kind, lo, hi, rounding, bits))
                assert got.dtype == np.float32
                np.testing.assert_array_equal(got, np.asarray(want, np.float32),
                                              err_msg=f"{bits} bits signed={signed} "
                                                      f"narrow={narrow}")


def test_fake_quant_equals_qonnx_binary_quant():
    rng = np.random.default_rng(16)
    scale = rng.uniform(0.1, 1.0, (1, 3, 1)).astype(np.float32)
    x = edge_values(rng, (2, 3, 7), scale, np.float32(0))
    np.testing.assert_array_equal(fake_quant(x, scale, np.float32(0), FakeQuantAttrs("bipolar")),
                                  binary_quant(x, scale))


@pytest.mark.parametrize("rounding", ["FLOOR", "ROUND", "CEIL", "DOWN", "HALF_UP"])
def test_fake_trunc_equals_qonnx_trunc(rounding):
    """Trunc v2 (Brevitas 0.13's export: output scale, clamp) and v1, against qonnx's own."""
    rng = np.random.default_rng(17)
    for signed in (False, True):
        for in_bits, out_bits in ((8, 4), (10, 3), (6, 6)):
            scale = rng.uniform(0.01, 0.1, (1, 3, 1, 1)).astype(np.float32)
            zp = np.float32(0) if signed else np.float32(rng.integers(0, 3))
            out_scale = (scale * np.float32(2.0 ** (in_bits - out_bits))
                         * rng.uniform(0.9, 1.1, (1, 3, 1, 1))).astype(np.float32)
            x = edge_values(rng, (2, 3, 4, 4), scale, zp) * np.float32(5)
            consts, attrs = trunc_constants(scale, zp, in_bits, out_bits, out_scale, signed,
                                            False, rounding)
            want = trunc_v2(x, scale, zp, np.float32(in_bits), False, signed, out_scale,
                            np.float32(out_bits), rounding)
            np.testing.assert_array_equal(fake_trunc(x, *consts, attrs),
                                          np.asarray(want, np.float32))
            consts, attrs = trunc_constants(scale, zp, in_bits, out_bits, None, signed, False,
                                            rounding)
            want = trunc_v1(x, scale, zp, np.float32(in_bits), np.float32(out_bits), rounding)
            np.testing.assert_array_equal(fake_trunc(x, *consts, attrs),
                                          np.asarray(want, np.float32))


@pytest.mark.parametrize("wbits,abits,rounding", [(4, 4, "ROUND"), (2, 2, "ROUND"),
                                                  (1, 1, "ROUND"), (4, 8, "FLOOR"),
                                                  (3, 2, "HALF_UP")])
def test_qonnx_cnn_matches_the_qonnx_executor(wbits, abits, rounding, tmp_path):
    """Compiles with no flag (generic, ASan/UBSan) and computes what qonnx's executor does,
    within one level of the output quantizer, on few outputs: the float Conv and Gemm sum in
    another order than onnxruntime (qonnx runs standard nodes with it), and where the layers
    take the integer kernels their fixed-point requantization rounds where qonnx rounds in
    float, so a value near a level boundary may land one level apart."""
    rng = np.random.default_rng(100 + wbits * 10 + abits)
    path = str(tmp_path / "m.onnx")
    onnx.save(qonnx_cnn(rng, wbits, abits, rounding), path)
    result = compile_model(path, "generic")
    # ROUND quantizers with zero point 0 take the integer form (Q [-> Clip] -> DQ); the others
    # (FLOOR, HALF_UP, binary) stay FakeQuant: input, activation, output
    fake = 3 if rounding != "ROUND" else (1 if abits == 1 else 0)
    assert sum(n.op == "FakeQuant" for n in result.graph.nodes) == fake
    build = build_host(result.files, result.graph, "model", str(tmp_path / "b"), sanitize=True,
                       opt="-O1")
    wrapper = ModelWrapper(path).transform(InferShapes())
    differ = total = 0
    for _ in range(8):
        x = rng.normal(0, 1.5, (1, 3, 8, 8)).astype(np.float32)
        want = execute_onnx(wrapper, {"x": x})["y"]
        got = run_host(build, [x])[0]
        assert np.max(np.abs(got - want)) <= 0.25 * (1 + 1e-6)  # one level of out_scale
        differ += int(np.count_nonzero(got != want))
        total += want.size
    assert differ <= total // 20, f"{differ} of {total} outputs one level apart"


def test_qonnx_errors_name_the_rule(tmp_path):
    rng = np.random.default_rng(3)
    model = qonnx_cnn(rng, 4, 4)
    node = next(n for n in model.graph.node if n.op_type == "Quant")
    next(a for a in node.attribute if a.name == "rounding_mode").s = b"STOCHASTIC"
    path = str(tmp_path / "bad.onnx")
    onnx.save(model, path)
    with pytest.raises(EdgeccError, match="rounding mode 'STOCHASTIC'"):
        compile_model(path, "generic")
    next(a for a in node.attribute if a.name == "rounding_mode").s = b"ROUND"
    model.graph.initializer.remove(next(t for t in model.graph.initializer
                                        if t.name == "act_bits"))
    model.graph.input.append(helper.make_tensor_value_info("act_bits", TensorProto.FLOAT, []))
    onnx.save(model, path)
    with pytest.raises(EdgeccError, match=r"input 3 \('act_bits'\) must be a compile-time"):
        compile_model(path, "generic")
    del node.input[3]  # found by the fuzzer: an internal error before
    onnx.save(model, path)
    with pytest.raises(EdgeccError, match="Quant needs its 4 inputs"):
        compile_model(path, "generic")


def test_verify_uses_the_qonnx_reference(tmp_path):
    """`edgecc verify` on a QONNX model: onnxruntime cannot run Quant, so the quantizers are
    computed as the qonnx package does and the rest by onnxruntime, and the report says so."""
    import subprocess
    import sys
    path = str(tmp_path / "m.onnx")
    onnx.save(qonnx_cnn(np.random.default_rng(5), 4, 4), path)
    proc = subprocess.run([sys.executable, "-m", "edgecc", "verify", path], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "QONNX quantizers as the qonnx package computes them" in proc.stdout
    assert "verify: PASS" in proc.stdout
