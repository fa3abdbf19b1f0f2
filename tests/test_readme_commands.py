"""The README's Cortex-M firmware-project commands, run as written (issue 12): the
``edgecc ... --emit-project fw/`` command of the Cortex-M section (on the bundled digits CNN as
``model.onnx`` with its calibration images as ``calib.npz``), then the "On its own" CMake
commands, which configure, build and run the firmware under qemu-system-arm. CMake 3.25 could
not find the toolchain file the README once named by a relative path."""
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("cmake", "make", "arm-none-eabi-gcc", "qemu-system-arm")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason=f"needs {', '.join(TOOLS)}")


def readme_commands():
    """(the --emit-project command, the CMake commands) as the README writes them."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("\n## Cortex-M"):]
    blocks = [textwrap.dedent(b) for b in re.findall(r"```sh\n(.*?)\n *```", section, re.S)]
    emit = re.search(r"^edgecc [^\n]*\\\n[^\n]*--emit-project[^\n]*$", blocks[0], re.M)
    on_its_own = section[section.index("On its own:"):]
    cmake = textwrap.dedent(re.search(r"```sh\n(.*?)\n *```", on_its_own, re.S).group(1))
    return emit.group(0), cmake


def test_readme_project_commands_run_as_written(tmp_path):
    emit, cmake = readme_commands()
    assert "--emit-project fw/" in emit and cmake.startswith("cmake -S fw -B fw/build")
    shutil.copyfile(os.path.join(ROOT, "examples", "digits", "digits_cnn.onnx"),
                    tmp_path / "model.onnx")
    shutil.copyfile(os.path.join(ROOT, "examples", "digits", "calib.npz"), tmp_path / "calib.npz")
    bin_dir = tmp_path / "bin"  # `edgecc` as installed: this checkout's
    bin_dir.mkdir()
    (bin_dir / "edgecc").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m edgecc "$@"\n')
    (bin_dir / "edgecc").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for script in (emit, cmake):
        done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{script}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    log = done.stdout + done.stderr  # the run target: QEMU's semihosting console
    assert re.search(r"^output 0 float32 ", log, re.M) and re.search(r"^ticks \d+$", log, re.M), log
