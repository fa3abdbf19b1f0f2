"""edgecc verify --target cortex-m4|cortex-m7|cortex-m55: the firmware under QEMU.

1. Firmware vs host: the generated sources (CMSIS-NN calls and edgecc's CMSIS-NN-compatible
   runtime_c/cmsis_nn/) are built into firmware for the target's QEMU board and run under
   qemu-system-arm, one run per sample (the first MAX_QEMU_SAMPLES; the firmware is linked
   once and, for the other samples, a copy of the ELF gets the sample's bytes in place of the
   bundled input). The same sources are built for the host with gcc; every output must be
   bit-exact (same bytes) with the host build's.
2. Host build vs onnxruntime, as for the generic target (verify.py, verify/int8.py), but on the
   graph compiled for the Cortex-M target: a quantized model is checked layer by layer, each
   layer of the NHWC graph alone, fed onnxruntime's input and compared with onnxruntime's
   output (integer layers within 1 LSB). NHWC tensors are named ``<onnx name>_nhwc`` (and
   their NCHW twins ``<onnx name>_nhwc_nchw``): onnxruntime's NCHW value is transposed with
   (0, 2, 3, 1) to feed or compare them. The one-layer programs use the target's backend
   chain (CMSIS-NN calls) and the cmsis_nn sources, so the kernels checked are the ones the
   firmware runs. A float model quantized by edgecc (--quantize int8): SQNR against the float
   model. A float graph: the float tolerance.
3. Memory report: flash = text + data of the ELF (code, weights, kernel tables, the bundled
   input); SRAM = data + bss of the ELF = activation arena (with kernel scratch) + reserved
   stack + static data (output buffers, board state); peak stack use (painted stack);
   executed instructions per inference, counted with SysTick under ``-icount shift=0`` (one
   instruction per ns of virtual time; 1 tick = 40 instructions on the MPS2 boards, 31.25 on
   mps3-an547; resolution one tick; see targets/cortex_m.py), and per MAC.
"""
from __future__ import annotations

import os
import re
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx

from ..analyze import analysis
from ..compiler.driver import compile_model
from ..compiler.loader import read_model
from ..errors import EdgeccError
from ..ir import Graph
from ..runner import build_host, read_trace, run_host
from ..targets.cortex_m import DEFAULT_STACK, build_firmware, get_board, require_tools, run_qemu
from ..targets.registry import get_target
from .host import format_report, load_inputs, onnxruntime_errors, verify
from .int8 import (
    MAX_LAYER_SAMPLES,
    QuantReport,
    _ort_refs,
    has_integer_ops,
    layer_regions,
    layer_report,
    onnx_tensor_names,
    verify_patched,
    verify_ptq,
)
from .int8_report import format_quant_report

MAX_QEMU_SAMPLES = 4
TO_NHWC = (0, 2, 3, 1)
_LAYOUT_SUFFIX = re.compile(r"^(.*)_(nhwc|nchw)(?:_\d+)?$")


# -- NHWC tensors and the ONNX tensors they stand for ------------------------------------------

def stand_ins(graph: Graph, onnx_names: set) -> Dict[str, Tuple[str, Optional[tuple]]]:
    """Graph tensor -> (ONNX tensor it holds, permutation from onnxruntime's NCHW value or
    None): ``t`` itself, ``t_nhwc`` (NHWC), ``t_nhwc_nchw`` (NCHW again)."""
    def resolve(name: str):
        if name in onnx_names:
            return name, None
        m = _LAYOUT_SUFFIX.match(name)
        if not m:
            return None
        base = resolve(m.group(1))
        if base is None:
            return None
        return base[0], (TO_NHWC if m.group(2) == "nhwc" else None)
    found = {}
    for name in graph.types:
        if name in graph.constants:
            continue
        r = resolve(name)
        if r is not None:
            found[name] = r
    return found


def with_graph_names(ref: Dict[str, np.ndarray], stand: Dict[str, tuple]) -> Dict[str, np.ndarray]:
    """onnxruntime's values, also under the names of the graph tensors standing for them."""
    out = dict(ref)
    for name, (src, perm) in stand.items():
        if name not in out and src in ref:
            v = ref[src]
            out[name] = np.ascontiguousarray(v.transpose(perm)) if perm and v.ndim == 4 else v
    return out


def verify_quantized_target(result, model: onnx.ModelProto, samples, workdir: str,
                            tol: float = 1e-4, sanitize: bool = False, workers: int = 0,
                            layer_samples: int = MAX_LAYER_SAMPLES) -> QuantReport:
    """verify_int8.verify_quantized on a graph compiled for a Cortex-M target (NHWC layers,
    CMSIS-NN kernels). rep.got: the host build's outputs of the whole model, per sample."""
    if result.patch is not None:
        return verify_patched(result, lambda base: verify_quantized_target(
            base, model, samples, workdir, tol, sanitize, workers, layer_samples),
            samples, workdir, sanitize)
    graph = result.graph
    stand = stand_ins(graph, onnx_tensor_names(model))
    regions = layer_regions(graph, set(stand))
    extra = [stand[n][0] for r in regions for n in r.inputs + r.outputs]
    refs, note = _ort_refs(model, samples, extra, layer_samples)
    refs = [with_graph_names(r, stand) for r in refs]
    rep = layer_report(result, regions, refs, samples, workdir, tol, sanitize, workers,
                       layer_samples, f"every integer layer of the {result.target} graph")
    rep.notes += [note] if note else []
    return rep


# -- firmware runs ----------------------------------------------------------------------------

def _load_segments(elf: bytes):
    """(vaddr, file offset, file size) of the PT_LOAD segments of a little-endian ELF32."""
    if elf[:4] != b"\x7fELF" or elf[4] != 1 or elf[5] != 1:
        raise EdgeccError("not a little-endian ELF32 file")
    phoff, = struct.unpack_from("<I", elf, 28)
    phentsize, phnum = struct.unpack_from("<HH", elf, 42)
    segs = []
    for k in range(phnum):
        p_type, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIIII", elf,
                                                                   phoff + k * phentsize)
        if p_type == 1:
            segs.append((p_vaddr, p_offset, p_filesz))
    return segs


def input_locations(elf_path: str, count: int) -> List[Tuple[int, int]]:
    """(file offset, size) of main.c's bundled ``inputK_data`` arrays in the ELF."""
    nm = subprocess.run(["arm-none-eabi-nm", "-S", elf_path], capture_output=True, text=True,
                        check=True).stdout
    symbols = {}
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 4:
            symbols[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    with open(elf_path, "rb") as f:
        segs = _load_segments(f.read())
    found = []
    for k in range(count):
        if f"input{k}_data" not in symbols:
            raise EdgeccError(f"input{k}_data not found in {elf_path}")
        addr, size = symbols[f"input{k}_data"]
        for vaddr, offset, filesz in segs:
            if vaddr <= addr and addr + size <= vaddr + filesz:
                found.append((offset + addr - vaddr, size))
                break
        else:
            raise EdgeccError(f"input{k}_data is not in a loaded segment of {elf_path}")
    return found


def elf_with_inputs(elf_path: str, out_path: str, arrays: Sequence[np.ndarray],
                    where: List[Tuple[int, int]]) -> str:
    """A copy of the firmware with other bytes in its bundled input arrays."""
    with open(elf_path, "rb") as f:
        data = bytearray(f.read())
    for a, (offset, size) in zip(arrays, where):
        raw = np.ascontiguousarray(a).tobytes()
        if len(raw) != size:
            raise EdgeccError(f"sample of {len(raw)} bytes for an input of {size} bytes")
        data[offset:offset + size] = raw
    with open(out_path, "wb") as f:
        f.write(data)
    return out_path


@dataclass
class FirmwareRuns:
    target: str
    machine: str
    sizes: Dict[str, int]
    outputs: List[List[np.ndarray]] = field(default_factory=list)  # per sample
    instructions: List[int] = field(default_factory=list)
    ticks: List[int] = field(default_factory=list)
    stack_used: Optional[int] = None
    patched: bool = True   # other samples by patching the ELF (else one firmware per sample)


def run_firmware(result, samples: Sequence[Dict[str, np.ndarray]], workdir: str,
                 sram: Optional[int] = None, flash: Optional[int] = None,
                 stack: Optional[int] = None, timeout: float = 600) -> FirmwareRuns:
    """Builds the firmware once and runs it under QEMU on every sample."""
    graph, target = result.graph, result.target
    board = get_board(target)
    arrays = [[np.asarray(s[n]).astype(graph.types[n].dtype.np_dtype).reshape(
        graph.types[n].shape) for n in graph.inputs] for s in samples]
    fw = build_firmware(result.files, os.path.join(workdir, "firmware"), target, sram, flash,
                        arrays[0], stack=DEFAULT_STACK if stack is None else stack)
    runs = FirmwareRuns(target, board.machine, dict(fw.sizes))
    where = input_locations(fw.elf, len(graph.inputs))
    with open(fw.elf, "rb") as f:  # the bundled sample must be where the symbols say
        image = f.read()
    runs.patched = all(image[o:o + n] == a.tobytes() for a, (o, n) in zip(arrays[0], where))
    for k, arr in enumerate(arrays):
        elf = fw.elf
        if k:
            if runs.patched:
                elf = elf_with_inputs(fw.elf, os.path.join(workdir, f"firmware_s{k}.elf"),
                                      arr, where)
            else:
                elf = build_firmware(result.files, os.path.join(workdir, f"firmware_s{k}"),
                                     target, sram, flash, arr,
                                     stack=DEFAULT_STACK if stack is None else stack).elf
        q = run_qemu(elf, target, timeout=timeout)
        runs.outputs.append(q.outputs)
        runs.instructions.append(q.instructions)
        runs.ticks.append(q.ticks)
        if q.stack_bytes is not None:
            runs.stack_used = max(runs.stack_used or 0, q.stack_bytes)
    return runs


@dataclass
class FirstDifference:
    """Where a firmware run first leaves the host build of the same sources."""
    tensor: str                # the first layer output (in execution order) that differs
    op: str                    # the IR op that computed it
    layer: int                 # its position among the traced layer outputs
    index: tuple               # the first differing element (multi-index, memory order)
    firmware: object
    host: object
    count: int                 # differing elements in that tensor
    elements: int

    def describe(self) -> str:
        return (f"first difference at layer {self.layer} '{self.tensor}' ({self.op}): "
                f"element {list(self.index)} firmware {self.firmware} vs host {self.host} "
                f"({self.count} of {self.elements} elements differ)")


def compare_traces(graph: Graph, firmware: Sequence[Tuple[str, bytes]],
                   host: Dict[str, np.ndarray]) -> Optional[FirstDifference]:
    """The first traced layer output whose firmware bytes differ from the host build's."""
    producers = graph.producers()
    for k, (name, raw) in enumerate(firmware):
        want = host.get(name)
        if want is None or name not in graph.types:
            continue
        t = graph.types[name]
        got = np.frombuffer(raw, dtype=t.dtype.np_dtype)
        if got.size != want.size:
            return FirstDifference(name, producers[name].op, k, (), f"{len(raw)} bytes",
                                   f"{want.nbytes} bytes", want.size, want.size)
        got = got.reshape(want.shape)
        diff = got.view(np.uint8).reshape(-1, got.itemsize) != np.ascontiguousarray(
            want).view(np.uint8).reshape(-1, want.itemsize)
        bad = np.flatnonzero(diff.any(axis=1))
        if bad.size:
            idx = np.unravel_index(int(bad[0]), want.shape)
            return FirstDifference(name, producers[name].op if name in producers else "?", k,
                                   tuple(int(i) for i in idx), got[idx].item(),
                                   want[idx].item(), int(bad.size), int(want.size))
    return None


def locate_difference(result, sample: Dict[str, np.ndarray], workdir: str,
                      sram: Optional[int], flash: Optional[int],
                      stack: Optional[int]) -> Optional[FirstDifference]:
    """Builds the firmware and the host program with -DEDGECC_TRACE, runs both on ``sample``
    and compares every layer output in execution order."""
    graph = result.graph
    arrays = [np.asarray(sample[n]).astype(graph.types[n].dtype.np_dtype).reshape(
        graph.types[n].shape) for n in graph.inputs]
    fw = build_firmware(result.files, os.path.join(workdir, "firmware_trace"), result.target,
                        sram, flash, arrays, stack=DEFAULT_STACK if stack is None else stack,
                        defines=["EDGECC_TRACE"])
    q = run_qemu(fw.elf, result.target, timeout=600)
    build = build_host(result.files, graph, result.prefix, os.path.join(workdir, "host_trace"),
                       trace=True)
    trace_dir = os.path.join(workdir, "host_trace", "trace")
    run_host(build, arrays, tag="trace", trace_dir=trace_dir)
    return compare_traces(graph, q.traces, read_trace(graph, trace_dir))


def bit_exact(firmware: Sequence[np.ndarray], host: Sequence[np.ndarray]) -> bool:
    return len(firmware) == len(host) and all(
        a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        for a, b in zip(firmware, host))


# -- the whole check --------------------------------------------------------------------------

@dataclass
class CortexMReport:
    target: str
    machine: str
    mode: str                          # "int8" (quantized model), "ptq" or "float"
    samples: int                       # samples compared with onnxruntime (host build)
    qemu_samples: int                  # samples run under QEMU
    bit_exact: List[bool]              # per QEMU sample: QEMU outputs == host outputs
    runs: FirmwareRuns
    macs: int
    arena: int
    stack: int                         # reserved
    weights: int                       # graph constants (flash)
    tables: int                        # kernel tables (flash)
    checked_graph: str
    quant: Optional[QuantReport] = None
    float_text: str = ""               # float graphs: verify.format_report's text
    float_ok: bool = True
    ok: bool = False
    difference: Optional[FirstDifference] = None  # the first sample that is not bit-exact

    @property
    def instructions(self) -> Optional[int]:
        return max(self.runs.instructions) if self.runs.instructions else None

    @property
    def instructions_per_mac(self) -> Optional[float]:
        i = self.instructions
        return i / self.macs if i is not None and self.macs else None

    @property
    def flash(self) -> int:
        return self.runs.sizes["flash"]

    @property
    def sram(self) -> int:
        return self.runs.sizes["sram"]

    @property
    def static_data(self) -> int:
        return self.sram - self.arena - self.stack


def verify_cortex_m(path: str, target: str, inputs: Optional[str] = None,
                    input_shapes=None, tol: float = 1e-4, sanitize: bool = False,
                    min_sqnr: float = 20.0, workdir: Optional[str] = None,
                    per_layer: bool = False, max_qemu_samples: int = MAX_QEMU_SAMPLES,
                    flash: Optional[int] = None, result=None, samples=None,
                    layer_samples: int = MAX_LAYER_SAMPLES,
                    **compile_options) -> CortexMReport:
    """Compile for ``target`` (``compile_options`` go to compile_model: quantize, calib, sram,
    stack, prefix, ...), run under QEMU, compare with the host build and onnxruntime.
    ``samples``: a list of {input name: array} (else read from ``inputs``, or one random)."""
    if get_target(target).board is None:
        raise EdgeccError(f"verify_cortex_m needs a target with a board, got '{target}'")
    require_tools("arm-none-eabi-gcc", "arm-none-eabi-nm", "qemu-system-arm")
    result = result or compile_model(path, target, input_shapes, **compile_options)
    graph = result.graph
    samples = samples if samples is not None else load_inputs(inputs, graph)
    stack = compile_options.get("stack") or DEFAULT_STACK
    quantize = compile_options.get("quantize")
    model = read_model(path)
    with tempfile.TemporaryDirectory(prefix="edgecc-verify-m-") as tmp:
        wd = workdir or tmp
        qemu_samples = samples[:max(1, max_qemu_samples)]
        runs = run_firmware(result, qemu_samples, os.path.join(wd, "qemu"),
                            compile_options.get("sram"), flash, stack)
        host_dir = os.path.join(wd, "host")
        quant, float_text, float_ok = None, "", True
        with onnxruntime_errors(path):
            if quantize:
                quant = verify_ptq(result, model, samples, host_dir, min_sqnr, sanitize,
                                   per_layer)
            elif has_integer_ops(graph):
                quant = verify_quantized_target(result, model, samples, host_dir, tol,
                                                sanitize, layer_samples=layer_samples)
        if quant is not None:
            host = quant.got
        else:  # a float graph
            build = build_host(result.files, graph, result.prefix, host_dir, sanitize=sanitize,
                               cflags=get_target(target).host_cflags)
            host = [run_host(build, [s[n] for n in graph.inputs], tag=f"h{k}")
                    for k, s in enumerate(qemu_samples)]
            outputs, layers, note = verify(path, target, inputs, per_layer, input_shapes, tol,
                                           sanitize, os.path.join(wd, "float"), result=result)
            float_text, float_ok = (format_report(outputs, layers, tol, note),
                                    all(c.ok for c in outputs))
    totals = analysis(result)["totals"]
    stats = result.const_bytes or {}
    mode = "ptq" if quantize else ("int8" if quant is not None else "float")
    checked = {"int8": f"the {target} graph (NHWC int8 layers with CMSIS-NN calls, built with "
                       "the cmsis_nn sources), each layer alone",
               "ptq": f"the {target} graph's outputs (end to end, vs the float model)",
               "float": f"the {target} graph's outputs"}[mode]
    rep = CortexMReport(target, runs.machine, mode, len(samples), len(qemu_samples),
                        [bit_exact(f, h) for f, h in zip(runs.outputs, host)], runs,
                        int(totals["macs"]), result.plan.arena_bytes, stack,
                        int(stats.get("weights_bytes", 0)), int(stats.get("table_bytes", 0)),
                        checked, quant, float_text, float_ok)
    if not all(rep.bit_exact):
        with tempfile.TemporaryDirectory(prefix="edgecc-verify-m-") as tmp:
            rep.difference = locate_difference(
                result, qemu_samples[rep.bit_exact.index(False)],
                os.path.join(workdir or tmp, "difference"), compile_options.get("sram"), flash,
                stack)
    rep.ok = (len(rep.bit_exact) == len(qemu_samples) and all(rep.bit_exact)
              and (quant.ok if quant is not None else float_ok))
    return rep


def format_cortex_m_report(rep: CortexMReport, per_layer: bool = False) -> str:
    lines = [f"== {rep.target} on qemu-system-arm -M {rep.machine}"]
    same = sum(rep.bit_exact)
    how = ("one firmware, the sample patched into a copy of the ELF per run"
           if rep.runs.patched else "one firmware per sample")
    lines.append(f"firmware vs host build of the same sources: {same} of {rep.qemu_samples} "
                 f"sample{'s' if rep.qemu_samples != 1 else ''} bit-exact ({how})"
                 + ("" if same == rep.qemu_samples else "  MISMATCH"))
    if rep.difference is not None:
        lines.append(f"  sample {rep.bit_exact.index(False)}, both built with -DEDGECC_TRACE: "
                     + rep.difference.describe())
    elif same != rep.qemu_samples:
        lines.append("  every traced layer output is bit-exact; only the outputs differ")
    lines.append("")
    lines.append(f"== host build vs onnxruntime: checked {rep.checked_graph}")
    if rep.quant is not None:
        text = format_quant_report(rep.quant, per_layer)
        lines += [ln for ln in text.splitlines() if not ln.startswith("verify: ")]
    else:
        lines += [ln for ln in rep.float_text.splitlines() if not ln.startswith("verify: ")]
    lines.append("")
    lines += memory_report(rep)
    lines.append("verify: PASS" if rep.ok else "verify: FAIL")
    return "\n".join(lines)


def memory_report(rep: CortexMReport) -> List[str]:
    s = rep.runs.sizes
    code = s["flash"] - rep.weights - rep.tables
    instr = rep.runs.instructions
    lines = [f"memory and time on {rep.target} ({rep.machine}):",
             f"  flash   {s['flash']:>10,} B  (ELF text {s['text']:,} + data {s['data']:,}: "
             f"weights {rep.weights:,}, kernel tables {rep.tables:,}, code and the rest "
             f"{code:,}, which includes the bundled input)",
             f"  SRAM    {s['sram']:>10,} B  (ELF data + bss: arena {rep.arena:,}, stack "
             f"{rep.stack:,} reserved"
             + (f" / {rep.runs.stack_used:,} used" if rep.runs.stack_used is not None else "")
             + f", static data {rep.static_data:,})"]
    if instr and all(i is not None for i in instr):
        spread = "" if min(instr) == max(instr) else f" (samples: {min(instr):,}..{max(instr):,})"
        per_mac = (f", {rep.instructions_per_mac:.2f} per MAC ({rep.macs:,} MACs)"
                   if rep.macs else "")
        lines.append(f"  time    {max(instr):>10,} instructions per inference{spread}{per_mac}")
        lines.append("  (instructions: SysTick ticks under qemu -icount shift=0, 1 instruction "
                     "per ns of virtual time; resolution one tick = "
                     f"{'31.25' if rep.machine == 'mps3-an547' else '40'} instructions)")
    else:
        lines.append("  time    not measured (the firmware printed no tick count)")
    return lines


def verify_cortex_m_report(path: str, target: str, inputs: Optional[str] = None,
                           per_layer: bool = False, input_shapes=None, tol: float = 1e-4,
                           sanitize: bool = False, min_sqnr: float = 20.0,
                           workdir: Optional[str] = None, flash: Optional[int] = None,
                           **compile_options) -> Tuple[str, bool]:
    """What `edgecc verify --target cortex-m*` prints, and whether it passed."""
    rep = verify_cortex_m(path, target, inputs, input_shapes, tol, sanitize, min_sqnr,
                          workdir, per_layer, flash=flash, **compile_options)
    return format_cortex_m_report(rep, per_layer), rep.ok

