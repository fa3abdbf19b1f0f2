"""A keyword-spotting audio front end from the ONNX signal ops, compiled with edgecc, built
with -Wall -Wextra -Werror -pedantic under ASan and UBSan, run on the host and compared with
onnxruntime and onnx's reference evaluator: log-mel energies of 1 s of 16 kHz audio (STFT
with a Hann window, 25 ms frames every 10 ms -> power spectrum -> MatMul with a
MelWeightMatrix -> Log)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host
from edgecc.verify import reference_run

RATE, FRAME, STEP, MELS = 16000, 400, 160, 40


def log_mel_model() -> onnx.ModelProto:
    def const(name, value):
        return numpy_helper.from_array(np.asarray(value), name)

    nodes = [
        helper.make_node("HannWindow", ["frame_length"], ["window"]),
        # onesided is the default, but onnx's shape inference needs it spelled out
        helper.make_node("STFT", ["audio", "frame_step", "window", "frame_length"], ["spec"],
                         onesided=1),
        helper.make_node("ReduceSumSquare", ["spec"], ["power"], axes=[-1], keepdims=0),
        helper.make_node("MelWeightMatrix", ["mels", "frame_length", "rate", "low", "high"],
                         ["mel_matrix"]),
        helper.make_node("MatMul", ["power", "mel_matrix"], ["mel"]),
        helper.make_node("Add", ["mel", "eps"], ["mel_eps"]),
        helper.make_node("Log", ["mel_eps"], ["log_mel"]),
    ]
    frames = 1 + (RATE - FRAME) // STEP
    graph = helper.make_graph(
        nodes, "log_mel",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, RATE, 1])],
        [helper.make_tensor_value_info("log_mel", TensorProto.FLOAT, [1, frames, MELS])],
        [const("frame_length", np.int64(FRAME)), const("frame_step", np.int64(STEP)),
         const("mels", np.int64(MELS)), const("rate", np.int64(RATE)),
         const("low", np.float32(20.0)), const("high", np.float32(RATE / 2)),
         const("eps", np.float32(1e-6))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_log_mel_front_end_matches_onnxruntime(tmp_path):
    model = log_mel_model()
    result = compile_model("log_mel.onnx", model=model)
    g = result.graph
    # the window and the mel matrix are compile-time constants; the STFT runs on the device
    assert [n.op for n in g.nodes].count("STFT") == 1
    assert not {"HannWindow", "MelWeightMatrix"} & {n.op for n in g.nodes}

    t = np.arange(RATE) / RATE
    rng = np.random.default_rng(3)
    audio = (0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3150 * t * (1 + t))
             + 0.05 * rng.standard_normal(RATE)).astype(np.float32).reshape(1, RATE, 1)
    build = build_host(result.files, g, result.prefix, str(tmp_path), sanitize=True, opt="-O1")
    (got,) = run_host(build, [audio])
    want = reference_run(model, {"audio": audio})["log_mel"]
    exact = ReferenceEvaluator(model).run(None, {"audio": audio})[0]  # FFTs in double
    assert got.shape == want.shape == (1, 1 + (RATE - FRAME) // STEP, MELS)
    # onnxruntime's float32 FFT is off by about 1e-6 of a frame's largest energy, which is
    # 1e-2 in the log of its weakest mel bands: compare energies on that scale...
    energy, ort_energy = np.exp(got.astype(np.float64)), np.exp(want.astype(np.float64))
    rel = np.abs(energy - ort_energy) / ort_energy.max(axis=-1, keepdims=True)
    assert rel.max() < 1e-4, f"mel energy error {rel.max():.2e} x the frame's largest"
    assert np.abs(got - want).mean() < 1e-3
    # ... and the logs with onnx's reference evaluator, whose FFT is exact (edgecc sums in
    # double)
    err = np.abs(got.astype(np.float64) - exact)
    assert err.max() < 1e-4, f"max |log-mel error| {err.max():.2e}"
