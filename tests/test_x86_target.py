"""The x86-avx2 target as a whole (issue 13, acceptance 4): its record, the flags its C states
(header, #error guard, CMakeLists.txt), the run function's CPU check (a CPU without AVX2, under
qemu-x86_64, gets MODEL_ERROR_CPU), `edgecc verify --target x86-avx2` and the reference models
float within 1e-4 of onnxruntime and int8 bit-identical with the portable build."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from onnx_helpers import quantize_ort

from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host
from edgecc.targets.registry import get_target

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits", "digits_cnn.onnx")
TARGET = "x86-avx2"


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f
                         if line.startswith("flags")), [])
    except OSError:
        return []


HAS_AVX2 = {"avx2", "fma"} <= set(_cpu_flags())
needs_avx2 = pytest.mark.skipif(not HAS_AVX2, reason="this CPU lacks AVX2 or FMA")


def _digits_input():
    with np.load(os.path.join(ROOT, "examples", "digits", "calib.npz")) as data:
        x = data[data.files[0]][:1].astype(np.float32)
    return x.reshape(1, 1, 8, 8)


def test_record():
    t = get_target(TARGET)
    assert t.backends == ("x86", "generic")
    assert t.host_cflags == ("-mavx2", "-mfma")
    assert t.board is None and t.runner == "host"
    v = get_target("x86-avx512-vnni")
    assert v.backends == t.backends and v.layout == t.layout
    assert v.host_cflags == ("-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl",
                             "-mavx512vnni")
    assert "VNNI" in v.description and "AVX-512 (F, BW, VL)" in v.description


def test_generated_code_states_and_checks_its_flags():
    got = compile_model(DIGITS, target=TARGET).files
    assert "-mavx2 -mfma" in got["model.h"]
    assert "MODEL_ERROR_CPU = 3" in got["model.h"]
    assert "#error" in got["model.c"] and "#include <immintrin.h>" in got["model.c"]
    assert '__builtin_cpu_supports("avx2")' in got["model.c"]
    assert "target_compile_options(model PRIVATE -mavx2 -mfma)" in got["CMakeLists.txt"]
    plain = compile_model(DIGITS, target="generic").files
    assert "ERROR_CPU" not in plain["model.h"] and "immintrin" not in plain["model.c"]
    assert "CMakeLists.txt" not in plain


def test_build_without_the_flags_stops_with_a_clear_error(tmp_path):
    r = compile_model(DIGITS, target=TARGET)
    with pytest.raises(RuntimeError, match="need AVX2 and FMA: build with -mavx2 -mfma"):
        build_host(r.files, r.graph, "model", str(tmp_path))


@needs_avx2
@pytest.mark.skipif(shutil.which("qemu-x86_64") is None, reason="no qemu-x86_64 (qemu-user)")
def test_run_refuses_a_cpu_without_avx2(tmp_path):
    """The same binary: on this CPU it runs; on QEMU's Westmere (SSE4.2, no AVX) the run
    function returns MODEL_ERROR_CPU (3) before touching a kernel."""
    r = compile_model(DIGITS, target=TARGET)
    build = build_host(r.files, r.graph, "model", str(tmp_path),
                       cflags=get_target(TARGET).host_cflags)
    x = _digits_input()
    native = run_host(build, [x])[0]
    assert native.shape == (1, 10) and np.isfinite(native).all()
    with pytest.raises(RuntimeError, match="run failed: status 3"):
        run_host(build, [x], launcher=("qemu-x86_64", "-cpu", "Westmere"))


@pytest.mark.parametrize("target, vnni", [(TARGET, False), ("x86-avx512-vnni", True)])
def test_flags_pick_the_int8_path(target, vnni, tmp_path):
    """One C text for both x86 targets (header and CMakeLists.txt state each one's flags); the
    int8 convolutions and fully connected layers hold a vpdpbusd path, which the preprocessor
    keeps exactly when the target's flags define __AVX512VNNI__ and __AVX512VL__."""
    quantized = str(tmp_path / "digits_qdq.onnx")
    with np.load(os.path.join(ROOT, "examples", "digits", "calib.npz")) as data:
        calib = data[data.files[0]][:8].astype(np.float32)
    quantize_ort(DIGITS, quantized, "image", calib)
    files = compile_model(quantized, target=target).files
    base = compile_model(quantized, target=TARGET).files
    assert files["model.c"] == base["model.c"]
    assert files["model_weights.c"] == base["model_weights.c"]
    flags = get_target(target).host_cflags
    assert " ".join(flags) in files["model.h"]
    assert f"target_compile_options(model PRIVATE {' '.join(flags)})" in files["CMakeLists.txt"]
    assert "_mm256_dpbusd_epi32" in files["model.c"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    macros = subprocess.run(["gcc", "-dM", "-E", "-x", "c", "/dev/null", *flags],
                            capture_output=True, text=True, check=True).stdout
    assert ("#define __AVX512VNNI__ 1" in macros and "#define __AVX512VL__ 1" in macros) == vnni
    pre = subprocess.run(["gcc", "-std=c99", "-E", *flags, "model.c"], cwd=str(tmp_path),
                         capture_output=True, text=True, check=True).stdout
    own, ours = [], False  # the lines that come from model.c itself (not immintrin.h)
    for line in pre.splitlines():
        if line.startswith("# "):
            ours = line.split()[2] == '"model.c"'
        elif ours:
            own.append(line)
    # (gcc's immintrin.h may define the intrinsic as a macro on __builtin_ia32_vpdpbusd_v8si)
    assert ("dpbusd" in "\n".join(own)) == vnni


@needs_avx2
def test_verify_cli(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgecc", "verify", DIGITS, "--target", TARGET],
                          capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verify: PASS" in proc.stdout
