"""edgecc's own post-training quantization to low bits (issue 15): --quantize w4a8, w4a4, w2a2
and the per-layer mix (--bits FILE or auto) on the bundled digits CNN (convolutions /0 and /3,
depthwise /6, /9, then a Gemm): the middle one-group convolutions take the widths, the first
and last layers stay int8; below 4 bits a one-line warning, and the compile command measures
the loss on the calibration data."""
import os
import subprocess
import sys

import numpy as np
import pytest

from edgecc.compiler.driver import compile_model
from edgecc.errors import EdgeccError
from edgecc.ir.ops.lowbit_ops import code
from edgecc.ir.lowbit import unpack
from edgecc.passes.quantize_lowbit import activation_params, weight_levels, weight_sqnr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "examples", "digits", "digits_cnn.onnx")
CALIB = os.path.join(ROOT, "examples", "digits", "calib.npz")


def compiled(mode, **kw):
    return compile_model(MODEL, "generic", quantize=mode, calib=CALIB, **kw)


def layer(result, name):
    return next(n for n in result.graph.nodes if n.name == name)


@pytest.mark.parametrize("mode,wbits,abits", [("w4a4", 4, 4), ("w2a2", 2, 2)])
def test_modes_put_the_middle_convolutions_on_bit_planes(mode, wbits, abits):
    r = compiled(mode)
    g = r.graph
    first, last = g.nodes[1], [n for n in g.nodes if n.op in ("QGemm", "Gemm")][-1]
    assert first.name == "/0/Conv" and first.op == "QConvPack"  # int8, writes the codes
    assert last.op == "QGemm"
    for name in ("/3/Conv", "/9/Conv"):
        node = layer(r, name)
        assert node.op == "QConvBits"
        x_t, w_t = g.types[node.inputs[0]], g.types[node.inputs[1]]
        assert (code(x_t).bits, code(w_t).bits) == (abits, wbits) and not code(x_t).signed
        w = unpack(g.constants[node.inputs[1]], code(w_t), w_t.shape[-1])
        top = (1 << (wbits - 1)) - 1
        assert w.min() >= -top and w.max() <= top and w.max() == top  # symmetric levels
    assert layer(r, "/6/Conv").op == "QConvPack"  # depthwise: int8 weights, output codes


def test_w1a1_runs_binary_weights_against_one_bit_codes():
    r = compiled("w1a1")
    for name in ("/3/Conv", "/9/Conv"):
        node = layer(r, name)
        x_t, w_t = (r.graph.types[t] for t in node.inputs[:2])
        assert node.op == "QConvBits" and code(w_t).binary and code(x_t).bits == 1
        assert sorted(set(unpack(r.graph.constants[node.inputs[1]], code(w_t),
                                 w_t.shape[-1]).ravel())) == [-1, 1]


def test_w4a8_keeps_int8_activations_with_4_bit_weights():
    r = compiled("w4a8")
    for name in ("/3/Conv", "/9/Conv"):
        node = layer(r, name)
        assert node.op == "QConv" and r.graph.types[node.inputs[1]].quant.bits == 4
        w = r.graph.constants[node.inputs[1]]
        assert np.abs(w).max() == 7


def test_levels_and_parameters():
    w = np.array([[[[0.5, -0.25]]], [[[0.0, 0.0]]], [[[-3.0, 1.4]]]], np.float32)
    levels, scale = weight_levels(w, 2)
    assert levels.tolist() == [[[[1, 0]]], [[[0, 0]]], [[[-1, 0]]]]  # -0.5: half to even
    assert np.allclose(scale, [0.5, 1.0, 3.0])
    assert weight_sqnr(w, 4) > weight_sqnr(w, 2)
    assert activation_params(0.0, 6.0, 2) == (2.0, -128, -128, -125)   # unsigned, after Relu
    assert activation_params(-1.0, 3.0, 4) == (pytest.approx(3.0 / 7), 0, -7, 7)


def test_per_layer_widths_file_and_auto(tmp_path):
    spec = tmp_path / "bits.txt"
    spec.write_text("# layer widths\n/3/Conv w2a2\n/9/Conv int8\n")
    r = compiled("w4a4", bits=str(spec))
    assert layer(r, "/3/Conv").op == "QConvBits" and layer(r, "/9/Conv").op == "QConv"
    auto = compiled("w2a2", bits="auto")
    ops = {n: layer(auto, n).op for n in ("/3/Conv", "/9/Conv")}
    assert "QConvBits" in ops.values()  # the median layer at least takes the width
    spec.write_text("/0/Conv w2a2\n")
    with pytest.raises(EdgeccError, match="no layer '/0/Conv' that can take low bits"):
        compiled("w2a2", bits=str(spec))
    spec.write_text("/3/Conv w3a3\n")
    with pytest.raises(EdgeccError, match=r"bits.txt:1: expected 'LAYER WIDTHS'"):
        compiled("w2a2", bits=str(spec))


def test_cli_warns_below_4_bits_and_measures_the_loss(tmp_path):
    def run(mode):
        return subprocess.run([sys.executable, "-m", "edgecc", MODEL, "--quantize", mode,
                               "--calib", CALIB, "-o", str(tmp_path / mode)],
                              capture_output=True, text=True, timeout=600)
    low, four = run("w2a2"), run("w4a4")
    assert low.returncode == 0 and four.returncode == 0, low.stderr + four.stderr
    warning = [line for line in low.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and "quantization-aware training" in warning[0]
    assert "/3/Conv" in warning[0] and "/9/Conv" in warning[0]
    loss = [line for line in low.stderr.splitlines() if "calibration samples" in line]
    assert len(loss) == 1 and "top-1 agreement" in loss[0] and "SQNR" in loss[0]
    assert "warning" not in four.stderr and "calibration samples" in four.stderr
    agree = float(four.stderr.split("top-1 agreement ")[1].split(" %")[0])
    assert agree >= 90.0  # 4 bits keep the classes on the calibration data
    bad = subprocess.run([sys.executable, "-m", "edgecc", MODEL, "--bits", "auto"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "--bits is only used with --quantize" in bad.stderr
