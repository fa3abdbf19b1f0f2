"""The executed-instruction counter for user-mode QEMU (edgecc/targets/qemu_user.py): exact on a
loop of known length (two instructions per iteration, so n more iterations count exactly 2n
more instructions) and identical across runs."""
import os
import shutil
import subprocess

import pytest

from edgecc.targets.qemu_user import run_counted

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-gcc") is None,
    reason="needs qemu-aarch64 (qemu-user) and aarch64-linux-gnu-gcc")

LOOP_C = r"""
#include <stdlib.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);   /* every argument has the same number of digits */
    __asm__ volatile("cbz %0, 2f\n1: subs %0, %0, #1\n b.ne 1b\n2:" : "+r"(n));
    return 0;
}
"""


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    work = tmp_path_factory.mktemp("qemu_user")
    src, exe = work / "loop.c", work / "loop"
    src.write_text(LOOP_C)
    subprocess.run(["aarch64-linux-gnu-gcc", "-static", "-O2", "-o", str(exe), str(src)],
                   check=True)
    return str(exe), str(work)


def test_counts_a_loop_of_known_length_exactly(loop):
    exe, work = loop
    counts = {n: run_counted("qemu-aarch64", exe, [f"{n:06d}"], work).instructions
              for n in (1000, 3000, 10000)}
    assert counts[3000] - counts[1000] == 2 * 2000
    assert counts[10000] - counts[1000] == 2 * 9000


def test_counts_are_identical_across_runs(loop):
    exe, work = loop
    runs = [run_counted("qemu-aarch64", exe, ["004321"], work) for _ in range(3)]
    assert len({r.instructions for r in runs}) == 1
    assert all(r.returncode == 0 for r in runs) and os.path.exists(exe)
