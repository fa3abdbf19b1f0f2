"""The benchmarks' models: the reference architectures of tests/model_zoo.py (exported from
torch with seeded random weights; needs the test dependencies) and the bundled digits CNN,
each with its calibration inputs, and onnxruntime's QDQ quantization of them."""
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

ZOO = ["resnet8", "dscnn", "mobilenetv1_025", "autoencoder", "mobilenetv2_035"]
ALL = ZOO + ["digits"]
DIGITS_DIR = os.path.join(ROOT, "examples", "digits")
CALIB_SAMPLES = 8


def float_model(name, work):
    """(float model path, PTQ calibration .npz, calibration inputs): the zoo's models are
    calibrated on 8 seeded N(0, 1) inputs, the digits CNN on examples/digits/calib.npz."""
    if name == "digits":
        calib_path = os.path.join(DIGITS_DIR, "calib.npz")
        with np.load(calib_path) as data:
            samples = data[data.files[0]][:CALIB_SAMPLES].astype(np.float32)
        return (os.path.join(DIGITS_DIR, "digits_cnn.onnx"), calib_path,
                samples.reshape((-1,) + samples.shape[-3:]))
    try:
        import model_zoo
    except ImportError as e:
        raise SystemExit(f"bench: {name} is built with torch ({e}); install the test "
                         "dependencies (bash scripts/setup.sh test) or use --models digits")
    float_path = model_zoo.build(name, os.path.join(work, f"{name}.onnx"), seed=0)
    shape = model_zoo.INPUT_SHAPES[name]
    samples = np.random.default_rng(0).standard_normal(
        (CALIB_SAMPLES,) + shape[1:]).astype(np.float32)
    calib_path = os.path.join(work, f"{name}_calib.npz")
    np.savez(calib_path, input=samples)
    return float_path, calib_path, samples


def ort_qdq(float_path, samples, work, name):
    """onnxruntime's quantize_static of the model (QDQ, per-channel int8 weights, int8
    activations; tests/onnx_helpers.py), calibrated on ``samples``."""
    import onnx
    from onnx_helpers import quantize_ort
    qdq = os.path.join(work, f"{name}_qdq.onnx")
    quantize_ort(float_path, qdq, onnx.load(float_path).graph.input[0].name, samples)
    return qdq
