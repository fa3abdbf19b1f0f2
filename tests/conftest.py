import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))



def pytest_terminal_summary(terminalreporter):
    """Print the ONNX node-test pass count over the whole suite."""
    stats = terminalreporter.stats
    node = lambda key: [r for r in stats.get(key, []) if "test_onnx_node.py::test_node" in r.nodeid]  # noqa: E731
    passed, failed = len(node("passed")), len(node("failed"))
    skipped, xfailed = len(node("skipped")), len(node("xfailed"))
    total = passed + failed + skipped + xfailed + len(node("xpassed"))
    if total:
        terminalreporter.write_line(
            f"ONNX node tests: {passed} of {total} pass ({100 * passed / total:.1f} %; {failed} "
            f"fail, {xfailed} expected failures in the ledger, {skipped} skipped: they use ops "
            f"edgecc does not lower yet)")


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    """zoo(name) -> dict(float=path, qdq=path, calib=npz path), made once per session: a
    tests/model_zoo.py architecture, and its onnxruntime QDQ quantization (per-channel QInt8,
    calibrated on 8 random N(0, 1) inputs, seed 0)."""
    root = tmp_path_factory.mktemp("cortex_m_zoo")
    cache = {}

    def get(name):
        import model_zoo  # torch: only for the tests that use the zoo
        from onnx_helpers import quantize_ort
        if name not in cache:
            float_path = model_zoo.build(name, str(root / f"{name}.onnx"), seed=0)
            shape = model_zoo.INPUT_SHAPES[name]
            calib = np.random.default_rng(0).standard_normal((8,) + shape[1:]).astype(
                np.float32)
            npz = str(root / f"{name}_calib.npz")
            np.savez(npz, input=calib)
            cache[name] = dict(float=float_path, calib=npz,
                               qdq=quantize_ort(float_path, str(root / f"{name}_qdq.onnx"),
                                                "input", calib))
        return cache[name]
    return get
