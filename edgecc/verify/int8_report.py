"""The figures and tables of `edgecc verify` on quantized graphs (see verify/int8.py).

End to end: share of output elements equal / within 1 LSB and the largest difference, in LSB
of the output's integer tensor (the DequantizeLinear input when the output is dequantized), and
top-1 agreement over the samples for classifier-shaped outputs; SQNR against a float reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..ir import DType, Graph

INT_DTYPES = (DType.INT8, DType.UINT8, DType.INT16, DType.UINT16, DType.INT32)


@dataclass
class OutputStats:
    name: str
    samples: int
    unit: str                      # "LSB" (integer domain) or "abs" (float output)
    equal: float = 0.0             # share of elements equal
    within1: float = 0.0           # share within 1 LSB (unit LSB only)
    max_diff: float = 0.0
    top1: Optional[float] = None   # classifier-shaped outputs: share of samples agreeing
    sqnr_db: Optional[float] = None
    max_rel: float = 0.0


def output_lsb(graph: Graph, name: str):
    """(scale, zero point) of the integer tensor behind a dequantized output, else None."""
    t = graph.types[name]
    if t.dtype in INT_DTYPES:
        return 1.0, 0
    p = graph.producers().get(name)
    if p is not None and p.op == "DequantizeLinear":
        q = graph.types[p.inputs[0]].quant
        if q is not None and len(q.scale) == 1:
            return float(q.scale[0]), int(q.zero_point[0])
    return None


def classifier_shaped(shape) -> bool:
    """One non-unit dimension (scores of one sample): top-1 agreement means something."""
    dims = [d for d in shape if d != 1]
    return len(dims) == 1 and 2 <= dims[0] <= 100000


def sqnr_db(got: np.ndarray, ref: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (got - ref)^2)."""
    signal = float(np.sum(ref.astype(np.float64) ** 2))
    noise = float(np.sum((got.astype(np.float64) - ref.astype(np.float64)) ** 2))
    if noise == 0:
        return float("inf")
    return 10.0 * np.log10(signal / noise) if signal > 0 else float("-inf")


def output_stats(graph: Graph, name: str, gots: List[np.ndarray], refs: List[np.ndarray],
                 lsb=None, with_sqnr: bool = False) -> OutputStats:
    st = OutputStats(name, len(gots), "LSB" if lsb else "abs")
    g = np.concatenate([x.astype(np.float64).ravel() for x in gots])
    w = np.concatenate([x.astype(np.float64).ravel() for x in refs])
    if lsb:
        d = np.abs(np.rint((g - w) / lsb[0]))
        st.within1 = float(np.mean(d <= 1)) if d.size else 1.0
    else:
        d = np.abs(g - w)
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    st.equal = float(np.mean(d == 0)) if d.size else 1.0
    st.max_diff = float(d.max()) if d.size else 0.0
    st.max_rel = float(np.max(np.abs(g - w)) / scale) if scale > 0 and d.size else 0.0
    if classifier_shaped(graph.types[name].shape):
        st.top1 = float(np.mean([np.argmax(a) == np.argmax(b) for a, b in zip(gots, refs)]))
    if with_sqnr:
        st.sqnr_db = sqnr_db(g, w)
    return st


# -- report ----------------------------------------------------------------------------------

def _short(name: str, width: int) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3):]


def _layer_table(rep, show_layers: bool) -> List[str]:
    if rep.mode == "ptq":
        lines = ["per layer (edgecc's int8 tensors, dequantized, vs the float tensors they "
                 "stand for; first sample):",
                 f"{'#':>4}  {'tensor':<44} {'op':<18} {'max abs err':>12} {'SQNR':>9}"]
        return lines + [f"{c.index:>4}  {_short(c.tensor, 44):<44} {c.ops[:18]:<18} "
                        f"{c.max_diff:>12.3e} {c.sqnr_db:>6.1f} dB" for c in rep.layers] + [""]
    lines = []
    checked = [c for c in rep.layers if not c.note]
    ints = [c for c in checked if c.integer]
    rows = rep.layers if show_layers else [c for c in rep.layers if not c.ok]
    if rows:
        lines += ["per layer (each layer alone, fed onnxruntime's inputs; integer outputs in "
                  "LSB, float ones absolute):",
                  f"{'#':>4}  {'tensor':<44} {'ops':<18} {'max diff':>9} {'off by 1':>9} "
                  f"{'elements':>9}  status"]
        for c in rows:
            diff = f"{c.max_diff:.0f} LSB" if c.integer else f"{c.max_diff:.2e}"
            off = f"{100 * c.off_by_one:.2f}%" if c.integer else f"rel {c.max_rel:.0e}"
            status = c.note or ("ok" if c.ok else "MISMATCH")
            lines.append(f"{c.index:>4}  {_short(c.tensor, 44):<44} {c.ops[:18]:<18} {diff:>9} "
                         f"{off:>9} {c.elements:>9}  {status}")
        lines.append("")
    worst = max(ints, key=lambda c: (c.max_diff, c.off_by_one), default=None)
    n_el = sum(c.elements for c in ints)
    share = sum(c.off_by_one * c.elements for c in ints) / n_el if n_el else 0.0
    lines.append(f"per layer: {len(ints)} integer and {len(checked) - len(ints)} float layers "
                 "checked alone"
                 + (f", {len(rep.layers) - len(checked)} not comparable"
                    if len(checked) < len(rep.layers) else "")
                 + (f"; largest integer difference {worst.max_diff:.0f} LSB; "
                    f"{100 * share:.2f}% of all integer elements off by one (most in "
                    f"'{worst.tensor}', {100 * worst.off_by_one:.2f}%)" if worst else ""))
    if rep.unchecked:
        lines.append(f"not checked alone (no onnxruntime tensor around them): "
                     f"{', '.join(rep.unchecked)}")
    if not checked:
        lines.append("no layer output of the compiled graph is a tensor onnxruntime computes: "
                     "nothing to compare layer by layer")
    return lines


def format_quant_report(rep, show_layers: bool) -> str:
    lines = _layer_table(rep, show_layers) if rep.layers or rep.mode == "int8" else []
    if rep.outputs:
        n = rep.outputs[0].samples
        plural = "s" if n != 1 else ""
        if rep.mode == "ptq":
            lines += [f"end to end over {n} sample{plural} (edgecc quantized vs onnxruntime's float "
                      "model):",
                      f"{'output':<32} {'max abs err':>12} {'max rel err':>12} "
                      f"{'top-1 agree':>12} {'SQNR':>10}"]
        else:
            lines += [f"end to end over {n} sample{plural} (edgecc vs onnxruntime):",
                      f"{'output':<32} {'equal':>8} {'within 1':>9} {'max diff':>12} "
                      f"{'top-1 agree':>12}"]
        for s in rep.outputs:
            top1 = f"{100 * s.top1:.2f}%" if s.top1 is not None else "-"
            if rep.mode == "ptq":
                lines.append(f"{_short(s.name, 32):<32} {s.max_diff:>12.3e} {s.max_rel:>12.3e} "
                             f"{top1:>12} {s.sqnr_db:>7.1f} dB")
                continue
            within = f"{100 * s.within1:.2f}%" if s.unit == "LSB" else "-"
            diff = f"{s.max_diff:.0f} LSB" if s.unit == "LSB" else f"{s.max_diff:.3e}"
            lines.append(f"{_short(s.name, 32):<32} {100 * s.equal:>7.2f}% {within:>9} "
                         f"{diff:>12} {top1:>12}")
    lines += rep.notes
    if rep.criterion:
        lines.append(rep.criterion)
    lines.append("verify: PASS" if rep.ok else "verify: FAIL")
    return "\n".join(lines)
