"""Build generated C for the host with gcc and run it on numpy inputs."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .backends.codegen import make_env
from .errors import EdgeccError
from .ir import Graph

RUNTIME_DIR = os.path.join(os.path.dirname(__file__), "runtime_c")
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]


@dataclass
class HostBuild:
    exe: str
    workdir: str
    graph: Graph
    launcher: Tuple[str, ...] = ()  # what runs the program (e.g. qemu-aarch64), () natively


def render_harness(prefix: str, n_inputs: int, n_outputs: int) -> str:
    env = make_env([RUNTIME_DIR])
    return env.get_template("host_main.c.j2").render(
        prefix=prefix, PREFIX=prefix.upper(), n_inputs=n_inputs, n_outputs=n_outputs)


def build_host(files: Dict[str, str], graph: Graph, prefix: str, workdir: str,
               sanitize: bool = False, opt: str = "-O2", cc: str = "gcc",
               trace: bool = False, cflags: Sequence[str] = (),
               launcher: Sequence[str] = ()) -> HostBuild:
    """Compile the sources and the host harness; ``cflags``: extra compiler flags;
    ``launcher``: the command run_host runs the program with (a cross build: its QEMU)."""
    if shutil.which(cc) is None:
        raise EdgeccError(f"C compiler '{cc}' not found (install it: scripts/setup.sh)")
    os.makedirs(workdir, exist_ok=True)
    for name, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(workdir, name)), exist_ok=True)
        with open(os.path.join(workdir, name), "w") as f:
            f.write(text)
    main_c = os.path.join(workdir, f"{prefix}_main.c")
    with open(main_c, "w") as f:
        f.write(render_harness(prefix, len(graph.inputs), len(graph.outputs)))
    sources = [os.path.join(workdir, n) for n in sorted(files) if n.endswith(".c")] + [main_c]
    exe = os.path.join(workdir, f"{prefix}_host")
    include = [f"-I{os.path.join(workdir, d)}" for d in sorted({os.path.dirname(n) for n in files})
               if d]
    cmd = [cc, *WARNINGS, opt, *cflags, *include, *(SANITIZE if sanitize else []),
           *(["-DEDGECC_TRACE"] if trace else []), "-o", exe, *sources, "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cc} failed:\n{' '.join(cmd)}\n{proc.stderr[-4000:]}")
    return HostBuild(exe, workdir, graph, tuple(launcher))


def write_inputs(build: HostBuild, inputs: Sequence[np.ndarray], tag: str):
    """(input file paths, output file paths): the program's arguments for ``inputs``."""
    g = build.graph
    args = []
    for k, (name, value) in enumerate(zip(g.inputs, inputs)):
        t = g.types[name]
        arr = np.ascontiguousarray(np.asarray(value).astype(storage_dtype(t)).reshape(
            storage_shape(t)))
        path = os.path.join(build.workdir, f"{tag}_in{k}.bin")
        arr.tofile(path)
        args.append(path)
    out_paths = [os.path.join(build.workdir, f"{tag}_out{k}.bin") for k in range(len(g.outputs))]
    return args, out_paths


def run_host(build: HostBuild, inputs: Sequence[np.ndarray], timeout: float = 300,
             tag: str = "run", trace_dir: str = "",
             launcher: Sequence[str] = ()) -> List[np.ndarray]:
    """Run the built program on ``inputs``; ``launcher``: a command that runs it (e.g.
    ``("qemu-x86_64", "-cpu", "Westmere")``), else the build's own, else the program runs
    as is."""
    g = build.graph
    launcher = tuple(launcher) or build.launcher
    args, out_paths = write_inputs(build, inputs, tag)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    if trace_dir:
        os.makedirs(trace_dir, exist_ok=True)
        env["EDGECC_TRACE_DIR"] = trace_dir
    proc = subprocess.run([*launcher, build.exe, *args, *out_paths], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"generated program failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    outs = []
    for name, path in zip(g.outputs, out_paths):
        t = g.types[name]
        outs.append(np.fromfile(path, dtype=storage_dtype(t)).reshape(storage_shape(t)))
    return outs


def storage_dtype(t):
    """numpy dtype of a graph input or output as the program reads and writes it: a packed
    (sub-byte) tensor as its bit-plane bytes (edgecc/ir/lowbit.py)."""
    return np.uint8 if t.dtype.packed else t.dtype.np_dtype


def storage_shape(t):
    """A packed tensor [..., C] is uint8 [..., planes, ceil(C / 8)]; others their shape."""
    return t.shape[:-1] + (t.planes, (t.shape[-1] + 7) // 8) if t.dtype.packed else t.shape


def read_trace(graph: Graph, trace_dir: str) -> Dict[str, np.ndarray]:
    """Layer outputs written by a -DEDGECC_TRACE build: tensor name -> array."""
    found: Dict[str, np.ndarray] = {}
    index = os.path.join(trace_dir, "index.txt")
    if not os.path.exists(index):
        return found
    with open(index) as f:
        for line in f:
            num, name = line.rstrip("\n").split(" ", 1)
            t = graph.types[name]
            found[name] = np.fromfile(os.path.join(trace_dir, f"{num}.bin"),
                                      dtype=t.dtype.np_dtype).reshape(t.shape)
    return found
