"""Executed-instruction counts of user-mode programs under QEMU (issue 14: aarch64 programs
under qemu-aarch64). Debian's qemu-user 7.2 accepts ``-plugin`` but ships no plugins;
``runtime_c/qemu_user/insn_count.c`` is edgecc's own, built here with the host's gcc on first
use (cached next to the other build products of the caller's folder). It adds 1 to a counter
before every guest instruction (an inline add registered per instruction at translation, so a
block left early still counts exactly what ran) and prints the total when the program exits.
Counts are deterministic for a given program, input and QEMU; they are instructions, not
cycles. tests/test_qemu_user.py checks them on a loop of known length."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Sequence

from ..errors import EdgeccError

PLUGIN_SOURCE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "runtime_c",
                             "qemu_user", "insn_count.c")
_COUNT = re.compile(r"^edgecc-insns: (\d+)$", re.M)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str          # the program's stderr, without the plugin's line
    instructions: int    # executed guest instructions, the whole process


def build_plugin(workdir: str) -> str:
    """The instruction-counting plugin as a shared library in ``workdir`` (built once)."""
    lib = os.path.join(workdir, "libedgecc_insn_count.so")
    if not os.path.exists(lib):
        os.makedirs(workdir, exist_ok=True)
        proc = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror",
                               "-o", lib, PLUGIN_SOURCE], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EdgeccError(f"building the QEMU plugin failed:\n{proc.stderr[-2000:]}")
    return lib


def run_counted(qemu: str, exe: str, args: Sequence[str], workdir: str,
                timeout: float = 600, cpu: str = "") -> Run:
    """Run ``exe`` under user-mode ``qemu`` (e.g. qemu-aarch64) with the counting plugin."""
    if shutil.which(qemu) is None:
        raise EdgeccError(f"{qemu} not found (apt-get install qemu-user)")
    cmd = [qemu, *(["-cpu", cpu] if cpu else []), "-plugin", build_plugin(workdir),
           "-d", "plugin", exe, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    found = _COUNT.findall(proc.stderr)
    if not found:
        raise EdgeccError(f"{qemu} printed no instruction count (exit {proc.returncode}):\n"
                          f"{proc.stderr[-2000:]}")
    return Run(proc.returncode, proc.stdout, _COUNT.sub("", proc.stderr).strip(),
               int(found[-1]))
