"""The aarch64-neon targets as a whole (issue 14, acceptance 2 and 4): their records (compiler,
flags, QEMU and its CPU are data), `edgecc verify --target aarch64-neon[-dotprod]` on the digits
CNN, float and int8 (onnxruntime's QDQ quantizer), with the executed instructions per inference,
and the int8 outputs under qemu-aarch64 equal to the portable build's on the host, byte for
byte."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

from onnx_helpers import quantize_ort

from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target
from edgecc.verify import verify_report
from edgecc.verify.host import instructions_per_inference

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-gcc") is None,
    reason="needs qemu-aarch64 (qemu-user) and aarch64-linux-gnu-gcc")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits", "digits_cnn.onnx")
TARGETS = ("aarch64-neon", "aarch64-neon-dotprod")
COUNT = re.compile(r"^executed instructions per inference \(qemu-aarch64( -cpu max)?, first "
                   r"sample\): (\d+)$", re.M)


def _samples(count):
    with np.load(os.path.join(ROOT, "examples", "digits", "calib.npz")) as data:
        x = data[data.files[0]].astype(np.float32)
    return x.reshape(-1, 1, 8, 8)[:count]


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("digits_int8") / "digits_int8.onnx")
    name = onnx.load(DIGITS).graph.input[0].name
    quantize_ort(DIGITS, out, name, _samples(64))
    return out


def test_records():
    for name, march, cpu in (("aarch64-neon", "-march=armv8-a", ""),
                             ("aarch64-neon-dotprod", "-march=armv8.2-a+dotprod", "max")):
        t = get_target(name)
        assert t.backends == ("neon", "generic") and t.runner == "host" and t.board is None
        assert t.layout == "edgecc.backends.neon.layout:to_nhwc"
        assert t.host_cflags == ("-static", march) and t.cc == "aarch64-linux-gnu-gcc"
        assert t.launcher == (("qemu-aarch64", "-cpu", cpu) if cpu else ("qemu-aarch64",))
        assert t.build_options() == dict(cc=t.cc, cflags=t.host_cflags, launcher=t.launcher)
    assert get_target("generic").launcher == () and get_target("generic").cc == "gcc"


@pytest.mark.parametrize("target", TARGETS)
def test_verify_float_digits(target):
    text, ok = verify_report(DIGITS, target)
    assert ok, text
    assert "verify: PASS" in text
    found = COUNT.search(text)
    assert found and (found.group(1) is not None) == target.endswith("dotprod"), text
    assert int(found.group(2)) > 10000


@pytest.mark.parametrize("target", TARGETS)
def test_verify_int8_digits(target):
    """edgecc's PTQ (SQNR criterion). onnxruntime's QDQ model is checked below against the
    portable build instead: its per-layer criterion (1 LSB) meets chains of NHWC layers as one
    region (the layout pass renames their tensors, which onnxruntime then lacks), where 1 LSB
    differences of the reference's float requantization can add up to 2."""
    digits = os.path.join(ROOT, "examples", "digits")
    text, ok = verify_report(DIGITS, target, inputs=os.path.join(digits, "heldout.npz"),
                             quantize="int8", calib=os.path.join(digits, "calib.npz"))
    assert ok, text
    assert COUNT.search(text), text


def test_int8_digits_bit_exact_with_the_host_generic_build(tmp_path, digits_int8):
    x = _samples(8)
    generic = compile_model(digits_int8, "generic")
    ref_build = build_host(generic.files, generic.graph, "model", str(tmp_path / "generic"))
    want = [run_host(ref_build, [s], tag=f"g{k}") for k, s in enumerate(x)]
    counts = {}
    for target in TARGETS:
        result = compile_model(digits_int8, target)
        assert "vdotq_laneq_s32" in result.files["model.c"]  # the NEON convolution kernel
        record = get_target(target)
        build = build_host(result.files, result.graph, "model", str(tmp_path / target),
                           **record.build_options())
        for k, s in enumerate(x):
            got = run_host(build, [s], tag=f"n{k}")
            assert all(np.array_equal(a, b) for a, b in zip(got, want[k])), (target, k)
        runs = [instructions_per_inference(build, [x[0]], record) for _ in range(2)]
        assert runs[0] == runs[1] > 0   # deterministic
        counts[target] = runs[0]
    assert counts["aarch64-neon-dotprod"] < counts["aarch64-neon"]


def test_cli_verify_and_byte_identical_code():
    proc = subprocess.run([sys.executable, "-m", "edgecc", "verify", DIGITS, "--target",
                           "aarch64-neon-dotprod"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verify: PASS" in proc.stdout and COUNT.search(proc.stdout), proc.stdout
    a, b = (compile_model(DIGITS, "aarch64-neon").files for _ in range(2))
    assert a == b
