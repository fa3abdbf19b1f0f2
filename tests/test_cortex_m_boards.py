"""Cortex-M firmware under qemu-system-arm (issue 4): the board support, the firmware project
and the runner, on all three boards (mps2-an500 Cortex-M7, mps2-an386 Cortex-M4, mps3-an547
Cortex-M55).

* The digits CNN, float and quantized by onnxruntime (QDQ int8), compiled for the generic
  target and (int8) for the board's own target with CMSIS-NN calls, runs on each board
  bit-exact with the host build of the same sources; the instruction count is positive and
  the same on a second run.
* SysTick under -icount shift=0 counts 1 tick per 40 instructions on the MPS2 boards (25 MHz)
  and per 31.25 on mps3-an547 (32 MHz), checked against a `subs; bne` loop of known length,
  including runs long enough to wrap the 24-bit counter.
* Budgets: an image over --flash / --sram fails with a one-line message; a HardFault reports
  the fault over semihosting and exits nonzero; main's return value is the exit code.
* The emitted CMake project configures and builds with its toolchain file, and counts the
  same instructions as build_firmware's firmware (one optimization level, FIRMWARE_OPT).
"""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from onnx_helpers import quantize_ort
from edgecc.compiler.driver import compile_model
from edgecc.errors import EdgeccError
from edgecc.runner import build_host, run_host
from edgecc.targets.cortex_m import (BOARDS, DEFAULT_STACK, FIRMWARE_OPT, build_firmware,
                                     build_program, emit_project, run_qemu)

MISSING = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
if MISSING:
    pytest.skip(f"{' and '.join(MISSING)} not installed (apt-get install gcc-arm-none-eabi "
                "libnewlib-arm-none-eabi qemu-system-arm)", allow_module_level=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits", "digits_cnn.onnx")
HELDOUT = np.load(os.path.join(ROOT, "examples", "digits", "heldout.npz"))
TARGETS = sorted(BOARDS)


def quantize_digits(out_path):
    return quantize_ort(DIGITS, out_path, "image", HELDOUT["images"])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """models(variant, target) -> (compile result, sample input, host outputs of the same
    sources). Variants: "float" and "int8" (onnxruntime QDQ) compiled for the generic target,
    "int8-cmsis" the QDQ model compiled for the board's own target (CMSIS-NN calls)."""
    root = tmp_path_factory.mktemp("cortex_m_models")
    qdq = quantize_digits(str(root / "digits_qdq.onnx"))
    cache = {}

    def get(variant, target):
        key = (variant, target if variant == "int8-cmsis" else "generic")
        if key not in cache:
            path, sample = {"float": (DIGITS, HELDOUT["images"][:1]),
                            "int8": (qdq, HELDOUT["images"][1:2]),
                            "int8-cmsis": (qdq, HELDOUT["images"][2:3])}[variant]
            result = compile_model(path, target=key[1])
            host = build_host(result.files, result.graph, result.prefix,
                              str(root / f"host_{variant}_{key[1]}"))
            cache[key] = (result, sample, run_host(host, [sample]))
        return cache[key]
    return get


def same_bytes(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("variant", ["float", "int8", "int8-cmsis"])
@pytest.mark.parametrize("target", TARGETS)
def test_digits_bit_exact_with_host(models, target, variant, tmp_path):
    result, sample, want = models(variant, target)
    if variant != "float":
        assert any(n.op.startswith("QConv") for n in result.graph.nodes)
    fw = build_firmware(result.files, str(tmp_path), target, input_arrays=[sample])
    assert fw.sizes["text"] > 0 and fw.sizes["bss"] > 0
    first = run_qemu(fw.elf, target)
    assert len(first.outputs) == len(want)
    for got, ref in zip(first.outputs, want):
        assert same_bytes(got, ref), (target, variant, got, ref)
    assert first.argmax == {0: int(np.argmax(want[0]))}
    assert first.instructions > 0
    assert 0 < first.stack_bytes < DEFAULT_STACK
    assert fw.sizes["sram"] <= BOARDS[target].default_sram
    again = run_qemu(fw.elf, target)
    assert (again.ticks, again.instructions) == (first.ticks, first.instructions)
    print(f"{target} {variant}: {first.instructions} instructions, stack {first.stack_bytes} B, "
          f"sizes {fw.sizes}")


SPIN = r"""
#include <stdint.h>

#include "icount.h"
#include "semihost.h"

static volatile uint32_t in_data = 0x12345678u; /* copied from flash by Reset_Handler */
static volatile uint32_t in_bss;                 /* zeroed by Reset_Handler */

/* Exactly 2 * n instructions: n times "subs; bne". */
static void spin(uint32_t n)
{
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

int main(void)
{
    static const uint32_t counts[] = {1000000u, 2000000u, 350000000u};
    uint32_t i;
    if (in_data != 0x12345678u || in_bss != 0) return 1;
    for (i = 0; i < sizeof(counts) / sizeof(counts[0]); ++i) {
        uint64_t ticks;
        icount_start();
        spin(counts[i]);
        ticks = icount_ticks();
        sh_puts("spin ");
        sh_put_u32(counts[i]);
        sh_puts(" ticks ");
        sh_put_u64(ticks);
        sh_puts(" instructions ");
        sh_put_u64(icount_ticks_to_instructions(ticks));
        sh_puts("\n");
    }
    return 7;
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_systick_counts_instructions(target, tmp_path):
    """-icount shift=0 is 1 ns per instruction; SysTick ticks at the CPU clock (25 MHz on
    MPS2, 32 MHz on MPS3). 350M iterations wrap the 24-bit counter once."""
    board = BOARDS[target]
    fw = build_program({"spin.c": SPIN}, str(tmp_path), target)
    run = run_qemu(fw.elf, target, timeout=300, check=False)
    assert run.exit_code == 7, run.log  # main's return value, via SYS_EXIT_EXTENDED
    found = {int(n): (int(t), int(i)) for n, t, i in
             re.findall(r"^spin (\d+) ticks (\d+) instructions (\d+)$", run.log, re.M)}
    assert sorted(found) == [1000000, 2000000, 350000000], run.log
    per_tick = 1000 / board.cpu_mhz
    assert per_tick == {"cortex-m4": 40, "cortex-m7": 40, "cortex-m55": 31.25}[target]
    for n, (ticks, instructions) in found.items():
        assert abs(ticks - 2 * n / per_tick) <= 1, (n, ticks)
        assert abs(instructions - 2 * n) <= per_tick, (n, instructions)
    assert found[2000000][0] - found[1000000][0] == 2000000 / per_tick
    assert found[350000000][0] > 1 << 24  # wrapped


def test_flash_and_sram_budgets(models, tmp_path):
    result, sample, _ = models("float", "generic")
    with pytest.raises(EdgeccError, match=r"FLASH needs \d+ bytes more than the --flash "
                                          r"budget of 16384 bytes"):
        build_firmware(result.files, str(tmp_path / "f"), "cortex-m7", flash=16384,
                       input_arrays=[sample])
    with pytest.raises(EdgeccError, match=r"SRAM needs \d+ bytes more than the --sram "
                                          r"budget of 4096 bytes"):
        build_firmware(result.files, str(tmp_path / "s"), "cortex-m4", sram=4096,
                       input_arrays=[sample])
    with pytest.raises(EdgeccError, match="more than mps3-an547 has"):
        emit_project(result.files, str(tmp_path / "p"), "cortex-m55", flash=1 << 20,
                     input_arrays=[sample])
    with pytest.raises(EdgeccError, match="1 input"):
        emit_project(result.files, str(tmp_path / "p"), "cortex-m7", input_arrays=[])


FAULT = r"""
#include "semihost.h"

int main(void)
{
    sh_puts("before the fault\n");
    __asm__ volatile(".inst.n 0xde00"); /* udf #0: UsageFault, escalated to HardFault */
    return 0;
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_hardfault_reports_and_exits_nonzero(target, tmp_path):
    fw = build_program({"fault.c": FAULT}, str(tmp_path), target)
    run = run_qemu(fw.elf, target, timeout=60, check=False)
    assert run.exit_code == 3, run.log
    assert "before the fault" in run.log
    fault = re.search(r"HardFault: pc=0x([0-9a-f]{8}) .*CFSR=0x([0-9a-f]{8})", run.log)
    assert fault, run.log
    assert int(fault.group(2), 16) & (1 << 16)  # UFSR.UNDEFINSTR


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_cmake_project_builds_and_runs(models, tmp_path):
    result, sample, want = models("int8-cmsis", "cortex-m7")
    src, build = tmp_path / "project", tmp_path / "build"
    emit_project(result.files, str(src), "cortex-m7", input_arrays=[sample])
    for name in ("CMakeLists.txt", "arm-none-eabi.cmake", "mps2-an500.ld", "main.c",
                 "input_data.h", "startup.c", "semihost.c", "icount.c", "model.c"):
        assert (src / name).exists(), name
    for cmd in (["cmake", "-S", str(src), "-B", str(build),
                 f"-DCMAKE_TOOLCHAIN_FILE={src / 'arm-none-eabi.cmake'}"],
                ["cmake", "--build", str(build)]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = run_qemu(str(build / "firmware.elf"), "cortex-m7")
    for got, ref in zip(run.outputs, want):
        assert same_bytes(got, ref)
    assert run.instructions > 0
    # the project's Release build and build_firmware (verify, bench) use one optimization
    # level, FIRMWARE_OPT: the same instructions for the same model and input
    assert f'set(CMAKE_C_FLAGS_RELEASE "{FIRMWARE_OPT}")' in (src / "CMakeLists.txt").read_text()
    direct = build_firmware(result.files, str(tmp_path / "direct"), "cortex-m7",
                            input_arrays=[sample])
    assert run_qemu(direct.elf, "cortex-m7").instructions == run.instructions
