"""Cortex-M firmware: board table, CMake project emission, direct builds, runs under QEMU.

Boards (QEMU 7.2 memory maps, read with the monitor's `info mtree`):

* cortex-m7 -> mps2-an500: ZBT SSRAM1 4 MB at 0x00000000 (our FLASH), ZBT SSRAM2&3 4 MB at
  0x20000000 (our SRAM). Default budget 1 MB flash / 320 KB SRAM, like the STM32F746.
* cortex-m4 -> mps2-an386: the same map as the AN500. Default 1 MB flash / 192 KB SRAM, like
  the STM32F407 (its 112 + 16 KB SRAM and 64 KB CCM counted together).
* cortex-m55 -> mps3-an547 (SSE-300): ITCM 512 KB at 0x00000000 (our FLASH), DTCM 512 KB at
  0x20000000 (our SRAM); the CPU boots Secure, with the SAU off every address is Secure, and
  the Secure aliases 0x10000000 / 0x30000000 are the same memories (booting from either
  works). Default 512 KB / 512 KB: the whole ITCM and DTCM (no common M55 part to copy).

Instruction counting (measured with a `subs; bne` loop of N iterations = 2N instructions):
under `-icount shift=0` QEMU advances its virtual clock 1 ns per instruction and SysTick,
clocked from the CPU clock, ticks at 25 MHz on both MPS2 boards -> exactly 1 tick per 40
instructions (N = 1e6: 50,000 ticks), and at 32 MHz on mps3-an547 -> 1 tick per 31.25
instructions (N = 1e6: 64,000 ticks). Wraps of the 24-bit counter are counted in
SysTick_Handler (N = 3.5e8: 17,500,000 ticks on MPS2 and 22,400,000 on MPS3, both exact).
The measurement itself costs under one tick. Counts are deterministic for a given binary and
input (data-dependent branches, e.g. clamps, move them by a few hundred instructions between
inputs); resolution is one tick. `-icount shift=6` gives
1.6 ticks per instruction on MPS2 (N = 1e6: 3,200,047 ticks); `run_qemu(icount_shift=)`
converts ticks for any shift.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import EdgeccError
from .cortex_m_project import (
    BOARD_SOURCES,
    Project,
    copy_board_support,
    render_linker_script,
    write_project,
    write_text,
)

# -ffp-contract=off: no fused multiply-add, so float results are bit-exact with the host build.
# -fno-ipa-cp: arm-none-eabi-gcc 12.2.1 (Debian's 12.2.rel1) miscompiles at -O2: a static
# function called with constant pointers into a static array gets an ipa-cp clone that IPA
# marks "const" although it stores through them, and dead-code elimination then drops the
# call (tests/test_portable_c.py has a reproducer; ShuffleNetV2 lost its transposes).
COMPILER_WORKAROUNDS = ("-fno-ipa-cp",)
COMMON_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
                 "-ffunction-sections", "-fdata-sections") + COMPILER_WORKAROUNDS
LINK_FLAGS = ("-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections")
# The one optimization level of every firmware: verify, build_firmware, build_program,
# bench/cortex_m.py and the emitted CMake project (its Release flags) all build with it, so
# they report the same executed instructions for the same model.
FIRMWARE_OPT = "-O2"
DEFAULT_STACK = 8 * 1024
KB, MB = 1024, 1024 * 1024


@dataclass(frozen=True)
class Board:
    target: str
    machine: str
    cpu_flags: tuple
    cpu_mhz: int  # SysTick's processor clock in QEMU
    flash_origin: int
    flash_max: int
    sram_origin: int
    sram_max: int
    default_flash: int
    default_sram: int
    memory_map: tuple


_MPS2_MAP = ("0x00000000 ZBT SSRAM1, 4 MB (mirror at 0x00400000): FLASH",
             "0x20000000 ZBT SSRAM2&3, 4 MB (mirror at 0x20400000): SRAM")
BOARDS: Dict[str, Board] = {
    "cortex-m7": Board("cortex-m7", "mps2-an500",
                       ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
                       25, 0x00000000, 4 * MB, 0x20000000, 4 * MB, 1 * MB, 320 * KB,
                       _MPS2_MAP + ("0x60000000 PSRAM, 16 MB",)),
    "cortex-m4": Board("cortex-m4", "mps2-an386",
                       ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
                       25, 0x00000000, 4 * MB, 0x20000000, 4 * MB, 1 * MB, 192 * KB,
                       _MPS2_MAP + ("0x01000000 block RAM, 16 KB", "0x21000000 PSRAM, 16 MB")),
    "cortex-m55": Board("cortex-m55", "mps3-an547",
                        ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
                        32, 0x00000000, 512 * KB, 0x20000000, 512 * KB, 512 * KB, 512 * KB,
                        ("0x00000000 ITCM, 512 KB (Secure alias 0x10000000): FLASH",
                         "0x01000000 SRAM, 2 MB (behind an MPC)",
                         "0x20000000 DTCM, 512 KB (Secure alias 0x30000000): SRAM",
                         "0x21000000 ISRAM0/1, 2 x 2 MB; 0x28000000 QSPI 8 MB; 0x60000000 DDR")),
}
_BY_MACHINE = {b.machine: b for b in BOARDS.values()}


def get_board(name: str) -> Board:
    """A board by target name (cortex-m7) or QEMU machine name (mps2-an500)."""
    board = BOARDS.get(name) or _BY_MACHINE.get(name)
    if board is None:
        raise EdgeccError(f"unknown Cortex-M target '{name}'; known: {', '.join(BOARDS)}")
    return board


def qemu_command(board: Board, icount_shift: int = 0) -> List[str]:
    return ["qemu-system-arm", "-M", board.machine, "-nographic", "-monitor", "none",
            "-serial", "null", "-semihosting", "-icount", f"shift={icount_shift}"]


def _budget(value: Optional[int], default: int, limit: int, what: str, board: Board) -> int:
    value = default if value is None else int(value)
    if value <= 0:
        raise EdgeccError(f"--{what} must be positive, got {value}")
    if value > limit:
        raise EdgeccError(f"--{what} {value} bytes is more than {board.machine} has "
                          f"({limit} bytes) for {board.target}")
    return value



def emit_project(files: Dict[str, str], out_dir: str, target: str = "cortex-m7",
                 sram: Optional[int] = None, flash: Optional[int] = None,
                 input_arrays: Sequence[np.ndarray] = (), stack: int = DEFAULT_STACK) -> Project:
    """Writes a CMake firmware project for `target`'s QEMU board: the model sources, main.c
    running them once on `input_arrays`, board support, linker script and toolchain file.
    `sram`/`flash` are budgets in bytes (None: the board's default)."""
    board = get_board(target)
    flash = _budget(flash, board.default_flash, board.flash_max, "flash", board)
    sram = _budget(sram, board.default_sram, board.sram_max, "sram", board)
    return write_project(files, out_dir, board, flash, sram, input_arrays, stack,
                         qemu_command(board), FIRMWARE_OPT)


@dataclass
class Firmware:
    elf: str
    board: Board
    # text, data, bss (arm-none-eabi-size; bss includes the stack), flash = text + data,
    # sram = data + bss
    sizes: Dict[str, int]
    project: Optional[Project] = None


def require_tools(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            raise EdgeccError(f"'{tool}' not found: install gcc-arm-none-eabi, "
                              "libnewlib-arm-none-eabi and qemu-system-arm")


def _link(board: Board, out_dir: str, sources: Sequence[str], include_dirs: Sequence[str],
          linker_script: str, flash: int, sram: int, opt: str,
          defines: Sequence[str] = ()) -> Firmware:
    require_tools("arm-none-eabi-gcc", "arm-none-eabi-size")
    elf = os.path.join(out_dir, "firmware.elf")
    cmd = ["arm-none-eabi-gcc", *board.cpu_flags, *COMMON_CFLAGS, opt,
           f"-DEDGECC_CPU_MHZ={board.cpu_mhz}u", *[f"-D{d}" for d in defines],
           *[f"-I{os.path.join(out_dir, d)}" for d in include_dirs],
           *LINK_FLAGS, "-T", os.path.join(out_dir, linker_script),
           f"-Wl,-Map={os.path.join(out_dir, 'firmware.map')}", "-o", elf,
           *[os.path.join(out_dir, s) for s in sources], "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        over = re.search(r"region `(FLASH|SRAM)' overflowed by (\d+) bytes", done.stderr)
        if over:
            region, extra = over.group(1), int(over.group(2))
            budget = flash if region == "FLASH" else sram
            raise EdgeccError(f"firmware does not fit {board.target}: {region} needs {extra} "
                              f"bytes more than the --{region.lower()} budget of {budget} bytes")
        raise RuntimeError(f"arm-none-eabi-gcc failed:\n{' '.join(cmd)}\n{done.stderr[-4000:]}")
    return Firmware(elf, board, section_sizes(elf))


def build_firmware(files: Dict[str, str], out_dir: str, target: str = "cortex-m7",
                   sram: Optional[int] = None, flash: Optional[int] = None,
                   input_arrays: Sequence[np.ndarray] = (), opt: str = FIRMWARE_OPT,
                   stack: int = DEFAULT_STACK, defines: Sequence[str] = ()) -> Firmware:
    """Emits the project and compiles its sources with arm-none-eabi-gcc directly (no CMake).
    ``defines``: extra -D macros (e.g. EDGECC_TRACE: main.c prints every layer output)."""
    proj = emit_project(files, out_dir, target, sram, flash, input_arrays, stack)
    if proj.cmsis_nn and not any(s.startswith("cmsis_nn/") for s in proj.sources):
        raise EdgeccError("the model calls CMSIS-NN but no CMSIS-NN sources were found "
                          "(edgecc/runtime_c/cmsis_nn/); link a cmsis-nn library instead")
    fw = _link(proj.board, out_dir, proj.sources, proj.include_dirs, proj.linker_script,
               proj.flash, proj.sram, opt, defines)
    fw.project = proj
    return fw


def build_program(sources: Dict[str, str], out_dir: str, target: str = "cortex-m7",
                  sram: Optional[int] = None, flash: Optional[int] = None,
                  opt: str = FIRMWARE_OPT,
                  stack: int = DEFAULT_STACK) -> Firmware:
    """Any C program (name -> text, with its own main) linked with the board support."""
    board = get_board(target)
    flash = _budget(flash, board.default_flash, board.flash_max, "flash", board)
    sram = _budget(sram, board.default_sram, board.sram_max, "sram", board)
    os.makedirs(out_dir, exist_ok=True)
    for name, text in sources.items():
        write_text(out_dir, name, text)
    copy_board_support(out_dir)
    script = f"{board.machine}.ld"
    write_text(out_dir, script, render_linker_script(board, flash, sram, stack))
    return _link(board, out_dir, sorted(n for n in sources if n.endswith(".c"))
                 + list(BOARD_SOURCES), ["."], script, flash, sram, opt)


def section_sizes(elf: str) -> Dict[str, int]:
    out = subprocess.run(["arm-none-eabi-size", elf], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    text, data, bss = (int(v) for v in out[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data, "sram": data + bss}


@dataclass
class QemuRun:
    outputs: List[np.ndarray]
    argmax: Dict[int, int]
    ticks: Optional[int]
    instructions: Optional[int]
    stack_bytes: Optional[int]  # peak stack use (painted stack)
    exit_code: int
    log: str
    traces: List[Tuple[str, bytes]]  # -DEDGECC_TRACE firmware: (tensor, raw bytes) in order
    # -DEDGECC_TRACE -DEDGECC_PROFILE firmware: (tensor, executed instructions) per layer,
    # to one SysTick tick (40 instructions on MPS2)
    layers: List[Tuple[str, int]] = ()


_OUTPUT_RE = re.compile(r"^output (\d+) (\w+) (\S+) ([0-9a-f]*)$", re.M)
_TRACE_RE = re.compile(r"^trace ([0-9a-f]*) (.*)$", re.M)


def run_qemu(elf: str, board: str, timeout: float = 120, icount_shift: int = 0,
             check: bool = True) -> QemuRun:
    """Runs firmware under qemu-system-arm (semihosting, -icount) and parses what main.c
    prints: outputs as numpy arrays, argmax lines, ticks and executed instructions.
    `check`: raise if the exit code (passed by semihosting) is not 0."""
    require_tools("qemu-system-arm")
    b = get_board(board)
    cmd = qemu_command(b, icount_shift) + ["-kernel", elf]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"qemu-system-arm timed out after {timeout}s: {' '.join(cmd)}")
    log = done.stdout + done.stderr  # QEMU 7.2 writes the semihosting console to stderr
    if check and done.returncode != 0:
        raise RuntimeError(f"firmware exited with code {done.returncode}:\n{log[-4000:]}")
    outputs = []
    for m in _OUTPUT_RE.finditer(log):
        shape = () if m.group(3) == "scalar" else tuple(int(d) for d in m.group(3).split("x"))
        outputs.append(np.frombuffer(bytes.fromhex(m.group(4)), dtype=m.group(2)).reshape(shape))
    found = re.search(r"^ticks (\d+)$", log, re.M)
    ticks = int(found.group(1)) if found else None
    # Each instruction is 2**shift ns of virtual time; SysTick ticks every 1000/cpu_mhz ns.
    instructions = None if ticks is None else ticks * 1000 // (b.cpu_mhz << icount_shift)
    argmax = {int(k): int(v) for k, v in re.findall(r"^argmax (\d+) (\d+)$", log, re.M)}
    stack = re.search(r"^stack (\d+)$", log, re.M)
    traces = [(m.group(2), bytes.fromhex(m.group(1))) for m in _TRACE_RE.finditer(log)]
    layers = [(name, int(t) * 1000 // (b.cpu_mhz << icount_shift))
              for t, name in re.findall(r"^layer (\d+) (.*)$", log, re.M)]
    return QemuRun(outputs, argmax, ticks, instructions, int(stack.group(1)) if stack else None,
                   done.returncode, log, traces, layers)
