"""Writes a Cortex-M firmware project (CMake) around generated model sources.

The project holds the model sources, `main.c` (runs the model once on a bundled sample and
prints its outputs and instruction count over semihosting), `input_data.h`, the board support
from runtime_c/boards/ (startup, semihosting, SysTick counting), a linker script whose FLASH
and SRAM lengths are the budgets, an arm-none-eabi toolchain file and `CMakeLists.txt`. Boards
and budgets are chosen by cortex_m.py; this module only renders and copies files."""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from ..backends.codegen import make_env
from ..errors import EdgeccError
from .model_header import ModelInterface, parse_interface, render_input_rows

RUNTIME_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "runtime_c")
BOARDS_DIR = os.path.join(RUNTIME_DIR, "boards")
CMSIS_NN_DIR = os.path.join(RUNTIME_DIR, "cmsis_nn")
BOARD_SOURCES = ("startup.c", "semihost.c", "icount.c")
BOARD_HEADERS = ("board.h", "semihost.h", "icount.h")


@dataclass
class Project:
    out_dir: str
    board: object  # cortex_m.Board
    interface: ModelInterface
    sources: List[str]  # .c files to compile, relative to out_dir
    include_dirs: List[str]  # relative to out_dir
    linker_script: str
    flash: int
    sram: int
    cmsis_nn: bool = False  # the model calls CMSIS-NN


def uses_cmsis_nn(files: Dict[str, str]) -> bool:
    return any(re.search(r'#include\s+"arm_\w+\.h"', text) for text in files.values())


def cmsis_nn_files() -> List[str]:
    """The bundled CMSIS-NN-compatible .c/.h files, relative to CMSIS_NN_DIR."""
    found = []
    for root, _, names in os.walk(CMSIS_NN_DIR):
        found += [os.path.relpath(os.path.join(root, n), CMSIS_NN_DIR)
                  for n in names if n.endswith((".c", ".h"))]
    return sorted(found)


def _env():
    return make_env([BOARDS_DIR])


def render_linker_script(board, flash: int, sram: int, stack: int) -> str:
    return _env().get_template("board.ld.j2").render(
        board=board.machine, cpu=board.target, memory_map=board.memory_map, flash=flash,
        sram=sram, stack=stack, flash_origin=board.flash_origin, sram_origin=board.sram_origin)


def write_text(out_dir: str, name: str, text: str) -> None:
    path = os.path.join(out_dir, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="\n") as f:
        f.write(text)


def copy_board_support(out_dir: str) -> None:
    for name in BOARD_SOURCES + BOARD_HEADERS:
        shutil.copyfile(os.path.join(BOARDS_DIR, name), os.path.join(out_dir, name))


def write_project(files: Dict[str, str], out_dir: str, board, flash: int, sram: int,
                  input_arrays: Sequence[np.ndarray], stack: int,
                  qemu_command: Sequence[str], opt: str) -> Project:
    """``opt``: the optimization level of the project's Release build (the default build
    type when it is the top-level project), cortex_m.FIRMWARE_OPT."""
    # The bundled CMSIS-NN-compatible implementation travels as cmsis_nn/*; compile_model
    # adds it for CMSIS-NN targets, else it is taken from runtime_c/ when the model needs it.
    cmsis = {n: t for n, t in files.items() if n.startswith("cmsis_nn/")}
    model_files = {n: t for n, t in files.items() if n not in cmsis}
    cmsis_nn = bool(cmsis) or uses_cmsis_nn(model_files)
    if cmsis_nn and not cmsis:
        for rel in cmsis_nn_files():
            with open(os.path.join(CMSIS_NN_DIR, rel)) as f:
                cmsis["cmsis_nn/" + rel.replace(os.sep, "/")] = f.read()
    iface = parse_interface(model_files)
    if isinstance(input_arrays, np.ndarray):
        input_arrays = [input_arrays]
    if len(input_arrays) != len(iface.inputs):
        raise EdgeccError(f"the model has {len(iface.inputs)} input(s), "
                          f"got {len(input_arrays)} sample array(s)")
    os.makedirs(out_dir, exist_ok=True)
    for name, text in {**model_files, **cmsis}.items():
        write_text(out_dir, name, text)
    copy_board_support(out_dir)
    cmsis_sources = sorted(n for n in cmsis if n.endswith(".c"))
    cmsis_includes = sorted({os.path.dirname(n) for n in cmsis if n.endswith(".h")})

    env = _env()
    inputs = [dict(index=t.index, dtype=t.dtype.np_dtype.name, shape_text=t.shape_text,
                   rows=render_input_rows(t, a)) for t, a in zip(iface.inputs, input_arrays)]
    outputs = [dict(index=t.index, dtype=t.dtype.np_dtype.name, shape_text=t.shape_text,
                    ctype=t.dtype.c_type, argmax=t.is_vector) for t in iface.outputs]
    common = dict(prefix=iface.prefix, PREFIX=iface.prefix.upper(), board=board.machine,
                  target=board.target)
    write_text(out_dir, "input_data.h",
               env.get_template("input_data.h.j2").render(inputs=inputs, **common))
    write_text(out_dir, "main.c", env.get_template("main.c.j2").render(
        inputs=inputs, outputs=outputs,
        argmax_types=sorted({o["ctype"] for o in outputs if o["argmax"]}), **common))
    linker_script = f"{board.machine}.ld"
    write_text(out_dir, linker_script, render_linker_script(board, flash, sram, stack))
    write_text(out_dir, "arm-none-eabi.cmake", env.get_template("arm-none-eabi.cmake.j2").render(
        cpu_flags=board.cpu_flags, **common))
    model_sources = sorted(n for n in model_files if n.endswith(".c"))
    write_text(out_dir, "CMakeLists.txt", env.get_template("CMakeLists.txt.j2").render(
        model_sources=model_sources, cmsis_nn=cmsis_nn, cmsis_nn_sources=cmsis_sources,
        cmsis_nn_includes=cmsis_includes, linker_script=linker_script, cpu_mhz=board.cpu_mhz,
        qemu_command=qemu_command, opt=opt, **common))
    sources = model_sources + cmsis_sources + ["main.c"] + list(BOARD_SOURCES)
    return Project(out_dir, board, iface, sources, ["."] + cmsis_includes, linker_script,
                   flash, sram, cmsis_nn)
