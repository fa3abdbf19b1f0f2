"""The targets: one record each. Everything that differs between targets is a field here, and
the driver, codegen, verify, bench and the CLI ask the record; no other module compares a
target or backend name (tests/test_architecture.py checks).

A record names its backend chain (the first backend whose kernel takes a node emits it;
``generic`` covers every op), the layout pass its kernels want, whether the memory plan may
run depthwise convolutions in place (a portable-kernel variant), its board (flash/SRAM
budgets, firmware toolchain and CPU flags; targets/cortex_m.py), how verify runs its programs
and the flags its C needs on the host's gcc. ``register``
adds a target at run time (e.g. a test's toy backend); registering a name twice is an error.

Kernel sets (``--kernels``): the chain above is the default set, ``edgecc`` (edgecc's own
kernels first); ``kernel_sets`` names other chains the target offers, e.g. ``cmsis-nn`` on the
Cortex-M targets: the CMSIS-NN API calls only, for users who link Arm's library.
``get_target(name, kernels)`` is the record with that set's chain (``Target.kernels`` names it).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import EdgeccError
from .costs import CORTEX_M, GENERIC, CostModel

DEFAULT_KERNELS = "edgecc"  # every target's own chain (Target.backends)
# --kernels cmsis-nn: every int8 layer CMSIS-NN covers is a CMSIS-NN API call (link Arm's
# library, or edgecc's cmsis_nn/), portable C for the rest
CMSIS_NN_ONLY = (("cmsis-nn", ("cmsis", "generic")),)


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    backends: Tuple[str, ...]           # backend chain (backends/registry.py names)
    layout: Optional[str] = None        # "module:function", Graph -> Graph, run before planning
    inplace_depthwise: bool = True      # kernels of this chain have in-place depthwise variants
    #                                     (the patch search plans with them; targets whose do not: False)
    board: Optional[str] = None         # QEMU board record (targets/cortex_m.py BOARDS key)
    runner: str = "host"                # verify: "host" (gcc) or "qemu-system-arm" (firmware)
    # flags its C needs when verify builds it with the host's gcc (e.g. -mavx2 -mfma); a
    # board's own compiler and CPU flags are in its board record (targets/cortex_m.py)
    host_cflags: Tuple[str, ...] = ()
    # kernel sets other than DEFAULT_KERNELS (``backends``): (name, backend chain) pairs
    kernel_sets: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    kernels: str = DEFAULT_KERNELS      # the kernel set whose chain ``backends`` is
    # estimated instructions per node (targets/costs.py), what the patch search weighs
    costs: CostModel = GENERIC
    # verify's compiler for the programs of a runner "host" target (with ``host_cflags``), and
    # the user-mode QEMU that runs them when they are for another CPU (e.g. qemu-aarch64,
    # ``qemu_cpu`` its -cpu, "" its default), "" when they run natively; under QEMU verify
    # also reports the executed instructions per inference (targets/qemu_user.py)
    cc: str = "gcc"
    qemu_user: str = ""
    qemu_cpu: str = ""

    @property
    def launcher(self) -> Tuple[str, ...]:
        """The command that runs the target's programs (runner.run_host), () natively."""
        if not self.qemu_user:
            return ()
        return (self.qemu_user, *(("-cpu", self.qemu_cpu) if self.qemu_cpu else ()))

    def build_options(self) -> Dict:
        """runner.build_host's compiler, flags and launcher for this target's programs."""
        return dict(cc=self.cc, cflags=tuple(self.host_cflags), launcher=self.launcher)

    @property
    def kernel_set_names(self) -> Tuple[str, ...]:
        return (DEFAULT_KERNELS,) + tuple(name for name, _ in self.kernel_sets)

    def with_kernels(self, kernels: str) -> "Target":
        """This target with the chain of kernel set ``kernels`` (one-line error if it has none
        of that name). Another set's kernels have no in-place depthwise variants."""
        chains = {**dict(self.kernel_sets), DEFAULT_KERNELS: self.backends}
        if kernels not in chains:
            raise EdgeccError(f"--kernels {kernels}: target '{self.name}' has no such kernel "
                              f"set; it has: {', '.join(self.kernel_set_names)}")
        if kernels == DEFAULT_KERNELS:
            return replace(self, kernels=kernels, kernel_sets=())
        return replace(self, backends=tuple(chains[kernels]), kernels=kernels, kernel_sets=(),
                       inplace_depthwise=False)

    def backend_chain(self) -> List:
        from ..backends.registry import get_backend
        return [get_backend(b) for b in self.backends]

    def layout_pass(self) -> Optional[Callable]:
        if self.layout is None:
            return None
        module, fn = self.layout.split(":")
        return getattr(importlib.import_module(module), fn)

    def scratch(self, graph, node) -> int:
        """Arena scratch bytes for ``node``: what the first backend of the chain that states a
        need asks for (a backend's scratch function returns None for the nodes its kernels
        leave to the next backend)."""
        for b in self.backend_chain():
            need = b.scratch(graph, node) if b.scratch else None
            if need is not None:
                return need
        return 0

    def inplace_scratch(self, graph, node) -> Optional[int]:
        """Scratch bytes of the in-place variant of the kernel that runs ``node`` (memory_plan's
        ``variants``), else None: the chain is asked in order, and a backend that takes the
        node (its scratch function answers) without an in-place variant ends the search."""
        for b in self.backend_chain():
            need = b.inplace(graph, node) if b.inplace else None
            if need is not None:
                return need
            if b.scratch is not None and b.scratch(graph, node) is not None:
                return None
        return None

    def runtime_files(self, generated: Dict[str, str]) -> Dict[str, str]:
        files: Dict[str, str] = {}
        for b in self.backend_chain():
            if b.runtime_files:
                files.update(b.runtime_files(generated, self))
        return files

    def get_board(self):
        if self.board is None:
            return None
        from .cortex_m import get_board
        return get_board(self.board)

    @property
    def default_sram(self) -> Optional[int]:
        board = self.get_board()
        return None if board is None else board.default_sram


def _cortex_m(name: str, what: str, backends=("cortex_m", "cmsis", "generic")) -> Target:
    return Target(name, f"{what}: NHWC int8 layers on CMSIS-NN calls, portable C for the rest",
                  backends, layout="edgecc.passes.layout_nhwc:to_nhwc",
                  board=name, runner="qemu-system-arm", kernel_sets=CMSIS_NN_ONLY,
                  costs=CORTEX_M)


def _aarch64(name: str, what: str, march: Tuple[str, ...], cpu: str = "") -> Target:
    return Target(name, f"{what}: NEON int8 and float kernels, portable C for the rest "
                  f"(aarch64-linux-gnu-gcc {' '.join(march)})", ("neon", "generic"),
                  layout="edgecc.backends.neon.layout:to_nhwc", inplace_depthwise=False,
                  host_cflags=("-static", *march), cc="aarch64-linux-gnu-gcc",
                  qemu_user="qemu-aarch64", qemu_cpu=cpu)


TARGETS: Dict[str, Target] = {t.name: t for t in (
    Target("generic", "portable C99 for any compiler", ("generic",)),
    _cortex_m("cortex-m4", "Arm Cortex-M4 (DSP), QEMU mps2-an386"),
    _cortex_m("cortex-m7", "Arm Cortex-M7 (DSP), QEMU mps2-an500"),
    _cortex_m("cortex-m55", "Arm Cortex-M55 (Helium), QEMU mps3-an547",
              ("helium", "cortex_m", "cmsis", "generic")),
    # x86-64 with AVX2 and FMA (Haswell, Zen and later): the x86 backend's kernels (NHWC where
    # they take a convolution), portable C for the rest; the C states and checks its flags
    Target("x86-avx2", "x86-64 with AVX2 and FMA (gcc -mavx2 -mfma): AVX2 float and int8 "
           "kernels, portable C for the rest", ("x86", "generic"),
           layout="edgecc.backends.x86.layout:to_nhwc", inplace_depthwise=False,
           host_cflags=("-mavx2", "-mfma")),
    # the same kernels and C; built with AVX-512 (F, BW, VL) and VNNI the int8 convolutions
    # and fully connected layers take their vpdpbusd paths (#if __AVX512VNNI__, __AVX512VL__)
    Target("x86-avx512-vnni", "x86-64 with AVX2, FMA, AVX-512 (F, BW, VL) and VNNI (gcc -mavx2 "
           "-mfma -mavx512f -mavx512bw -mavx512vl -mavx512vnni: Ice Lake, Zen 4 and later): the "
           "x86-avx2 kernels, int8 on vpdpbusd, portable C for the rest", ("x86", "generic"),
           layout="edgecc.backends.x86.layout:to_nhwc", inplace_depthwise=False,
           host_cflags=("-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl",
                        "-mavx512vnni")),
    # Cortex-A (armv8-a, NEON): the neon backend's kernels (NHWC where they take a layer),
    # portable C for the rest; verify cross-compiles (-static) and runs under qemu-aarch64
    _aarch64("aarch64-neon", "AArch64 armv8-a with NEON (Cortex-A53/A72 class)",
             ("-march=armv8-a",)),
    # the same kernels and C; with the dot product extension the int8 convolutions take their
    # SDOT paths (#if __ARM_FEATURE_DOTPROD); QEMU's "max" CPU has it
    _aarch64("aarch64-neon-dotprod", "AArch64 armv8.2-a with NEON and SDOT/UDOT (Cortex-A55/"
             "A76 class)", ("-march=armv8.2-a+dotprod",), cpu="max"),
)}


def get_target(name, kernels: Optional[str] = None) -> Target:
    """The record of target ``name`` (a Target is returned as is), with the chain of kernel set
    ``kernels`` (None: the record's own)."""
    t = name if isinstance(name, Target) else TARGETS.get(name)
    if t is None:
        raise EdgeccError(f"unknown --target '{name}'; known: {', '.join(TARGETS)}")
    if kernels is None or kernels == t.kernels:
        return t
    return TARGETS.get(t.name, t).with_kernels(kernels)


def kernel_set_names() -> List[str]:
    """Every kernel set some target offers (the choices of --kernels)."""
    return sorted({k for t in TARGETS.values() for k in t.kernel_set_names})


def register(target: Target) -> Target:
    if target.name in TARGETS:
        raise ValueError(f"target '{target.name}' is already registered")
    TARGETS[target.name] = target
    return target


def with_board() -> List[str]:
    """The targets whose programs run as firmware on a board."""
    return [n for n, t in TARGETS.items() if t.board is not None]
