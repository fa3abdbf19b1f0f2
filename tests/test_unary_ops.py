"""Elu (an activation that fuses into Conv) and Softsign (a unary op), added as
docs/ARCHITECTURE.md says: one UNARY entry in ir/ops/elementwise.py and one C expression in
backends/generic/elementwise.py. Float against onnxruntime (ASan/UBSan build), fused where an
activation may fuse, and int8 by edgecc's PTQ as 256-entry tables (SQNR against float)."""
import numpy as np
import onnx
from onnx import helper

from onnx_helpers import make_model, rand
from edgecc.compiler.driver import compile_model
from edgecc.verify import verify_report
from edgecc.verify.host import verify


def _model(tmp_path):
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Elu", ["c"], ["e"], alpha=0.7),
             helper.make_node("Softsign", ["e"], ["s"]),
             helper.make_node("Elu", ["s"], ["y"])]
    model = make_model(nodes, [("x", (1, 3, 6, 6))], [("y", (1, 4, 6, 6))],
                       {"w": rand(rng, 4, 3, 3, 3), "b": rand(rng, 4)})
    path = str(tmp_path / "unary.onnx")
    onnx.save(model, path)
    return path


def test_elu_fuses_and_softsign_runs_like_onnxruntime(tmp_path):
    path = _model(tmp_path)
    g = compile_model(path).graph
    ops = [(n.op, getattr(getattr(n.attrs, "activation", None), "kind", None)) for n in g.nodes]
    assert ops == [("Conv", "Elu"), ("Softsign", None), ("Elu", None)], ops
    outputs, _, _ = verify(path, inputs=None, sanitize=True, workdir=str(tmp_path / "v"))
    assert all(c.ok for c in outputs) and outputs[0].max_rel < 1e-5, outputs


def test_elu_and_softsign_as_int8_tables(tmp_path):
    path = _model(tmp_path)
    calib = str(tmp_path / "calib.npz")
    np.savez(calib, x=np.random.default_rng(5).standard_normal((16, 1, 3, 6, 6)).astype(
        np.float32))
    result = compile_model(path, quantize="int8", calib=calib)
    assert [n.op for n in result.graph.nodes].count("QLut") >= 2
    text, ok = verify_report(path, quantize="int8", calib=calib)
    assert ok, text
