"""IR ops: the recurrent layers RNN, GRU and LSTM (one node per ONNX node).

Their attribute records and facts (numpy reference for constant folding, MACs, the shape
rule that validation and codegen rely on); the ONNX lowerings are in
compiler/lowering/recurrent.py, the C kernels in backends/generic/recurrent.py.

A node's inputs are ONNX's, each optional one "" when absent:
    RNN, GRU: X, W, R, B, sequence_lens, initial_h
    LSTM:     X, W, R, B, sequence_lens, initial_h, initial_c, P
and its outputs ONNX's (Y, Y_h, and Y_c for LSTM; "" when not requested) followed by a
work tensor of ``work_size`` elements: the state the kernel updates, written by the node and
read by nobody (the memory plan gives it a buffer live only during the node).

Semantics (the ONNX spec, as onnxruntime computes it): direction d of a bidirectional layer
runs backward when d == 1; a batch entry n runs ``sequence_lens[n]`` steps (clamped to
[0, seq_length]): a reverse direction starts at step len - 1, steps from len on leave the
state as it is and give zero outputs in Y, Y_h / Y_c hold the state after the last step run,
and zeros when len is 0 (as onnxruntime gives; the spec does not say). ``clip`` bounds every
activation's input (the gates' pre-activations), not the LSTM cell state fed to h.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .. import Graph, Node
from ..registry import ir_op

# gates per op (rows of W and R are gate-major: RNN [i], GRU [z, r, h], LSTM [i, o, f, c])
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
# activation functions per direction (RNN f; GRU f, g; LSTM f, g, h) and their defaults
DEFAULT_ACTIVATIONS = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"),
                       "LSTM": ("Sigmoid", "Tanh", "Tanh")}
# the activations ONNX lists: canonical name -> (uses alpha, uses beta, default alpha, beta)
# (the defaults are those of the corresponding ONNX operators, as the spec says)
ACTIVATIONS = {
    "Relu": (False, False, 0.0, 0.0), "Tanh": (False, False, 0.0, 0.0),
    "Sigmoid": (False, False, 0.0, 0.0), "Affine": (True, True, 1.0, 0.0),
    "LeakyRelu": (True, False, 0.01, 0.0), "ThresholdedRelu": (True, False, 1.0, 0.0),
    "ScaledTanh": (True, True, 1.0, 1.0), "HardSigmoid": (True, True, 0.2, 0.5),
    "Elu": (True, False, 1.0, 0.0), "Softsign": (False, False, 0.0, 0.0),
    "Softplus": (False, False, 0.0, 0.0),
}


@dataclass(frozen=True)
class GateFn:
    """One activation function of a recurrent layer, with its alpha and beta."""

    kind: str
    alpha: float = 0.0
    beta: float = 0.0


@dataclass(frozen=True)
class RecurrentAttrs:
    hidden: int
    direction: str                     # "forward", "reverse" or "bidirectional"
    layout: int                        # 0: X [T, N, I]; 1: X [N, T, I] (ONNX ``layout``)
    # per direction, the op's functions in ONNX order (direction 0's, then direction 1's)
    activations: Tuple[GateFn, ...]
    clip: Optional[float] = None
    linear_before_reset: bool = False  # GRU
    input_forget: bool = False         # LSTM

    @property
    def directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    def reverse(self, d: int) -> bool:
        """Direction d runs from the last step to the first."""
        return self.direction == "reverse" or d == 1

    def fn(self, d: int, k: int) -> GateFn:
        """Activation k (f, g, h) of direction d."""
        per = len(self.activations) // self.directions
        return self.activations[d * per + k]


def work_size(op: str, hidden: int) -> int:
    """Elements of the work tensor: state h, the next h, and the LSTM cell / GRU z and r*h."""
    return {"RNN": 2, "GRU": 4, "LSTM": 3}[op] * hidden


def shape_error(op: str, attrs: RecurrentAttrs, shapes: dict) -> Optional[str]:
    """The broken shape rule of a node (``shapes``: input/output role -> shape, absent
    optional ones left out), or None."""
    x = shapes["X"]
    if len(x) != 3:
        return f"X must have rank 3, not {len(x)}"
    steps, batch, inputs = (x[1], x[0], x[2]) if attrs.layout else x
    D, G, H = attrs.directions, GATES[op], attrs.hidden
    if H < 1 or min(x) < 1:
        return "hidden_size and the dimensions of X must be positive"
    state = (batch, D, H) if attrs.layout else (D, batch, H)
    want = {"W": (D, G * H, inputs), "R": (D, G * H, H), "B": (D, 2 * G * H),
            "sequence_lens": (batch,), "initial_h": state, "initial_c": state, "P": (D, 3 * H),
            "Y": (batch, steps, D, H) if attrs.layout else (steps, D, batch, H),
            "Y_h": state, "Y_c": state}
    for role, shape in shapes.items():
        if role in want and tuple(shape) != want[role]:
            return (f"{role} has shape {list(shape)}, expected {list(want[role])} "
                    f"(direction {attrs.direction}, hidden_size {H}, layout {attrs.layout})")
    return None


def roles(op: str):
    """(input roles, output roles) of a node, in its inputs' and outputs' order."""
    ins = ["X", "W", "R", "B", "sequence_lens", "initial_h"]
    outs = ["Y", "Y_h"]
    if op == "LSTM":
        ins += ["initial_c", "P"]
        outs += ["Y_c"]
    return ins, outs + ["work"]


def _check(graph: Graph, node: Node) -> Optional[str]:
    ins, outs = roles(node.op)
    shapes = {r: graph.types[t].shape for r, t in zip(ins + outs, node.inputs + node.outputs)
              if t and r != "work"}
    return shape_error(node.op, node.attrs, shapes)


def _macs(graph: Graph, node: Node) -> int:
    x = graph.types[node.inputs[0]].shape
    a = node.attrs
    return int(np.prod(x[:2])) * a.directions * GATES[node.op] * a.hidden * (x[2] + a.hidden)


def apply_fn(fn: GateFn, v: np.ndarray) -> np.ndarray:
    """An activation on a numpy array (what the C expressions compute)."""
    k, a, b = fn.kind, v.dtype.type(fn.alpha), v.dtype.type(fn.beta)
    one = v.dtype.type(1)
    with np.errstate(over="ignore"):
        table = {
            "Relu": lambda: np.where(v < 0, 0, v), "Tanh": lambda: np.tanh(v),
            "Sigmoid": lambda: one / (one + np.exp(-v)), "Affine": lambda: a * v + b,
            "LeakyRelu": lambda: np.where(v >= 0, v, v * a),
            "ThresholdedRelu": lambda: np.where(v >= a, v, 0),
            "ScaledTanh": lambda: a * np.tanh(b * v),
            "HardSigmoid": lambda: np.clip(a * v + b, 0, 1),
            "Elu": lambda: np.where(v >= 0, v, a * np.expm1(v)),
            "Softsign": lambda: v / (one + np.abs(v)),
            "Softplus": lambda: np.where(v > 0, v + np.log1p(np.exp(-np.abs(v))),
                                         np.log1p(np.exp(v))),
        }
        return table[k]().astype(v.dtype)


def _cell(op: str, a: RecurrentAttrs, d: int, x, h, c, w, r, wb, rb, p):
    """One step of direction d on one batch entry: the next (h, c)."""
    H = a.hidden
    clip = (lambda v: np.clip(v, -a.clip, a.clip)) if a.clip is not None else (lambda v: v)
    f = lambda k, v: apply_fn(a.fn(d, k), clip(v))  # noqa: E731
    gx = w @ x + wb
    if op == "RNN":
        return f(0, gx + r @ h + rb), c
    if op == "GRU":
        gh = r[:2 * H] @ h + rb[:2 * H]
        z, rr = f(0, gx[:H] + gh[:H]), f(0, gx[H:2 * H] + gh[H:])
        if a.linear_before_reset:
            hh = f(1, gx[2 * H:] + rr * (r[2 * H:] @ h + rb[2 * H:]))
        else:
            hh = f(1, gx[2 * H:] + r[2 * H:] @ (rr * h) + rb[2 * H:])
        return (1 - z) * hh + z * h, c
    g = gx + r @ h + rb
    pi, po, pf = (p[:H], p[H:2 * H], p[2 * H:]) if p is not None else (0, 0, 0)
    i = f(0, g[:H] + pi * c)
    fg = 1 - i if a.input_forget else f(0, g[2 * H:3 * H] + pf * c)
    c = fg * c + i * f(1, g[3 * H:])
    o = f(0, g[H:2 * H] + po * c)
    return o * apply_fn(a.fn(d, 2), c), c  # the cell state is not clipped


def _reference(node: Node, xs):
    """numpy evaluation of a node (for constant folding), step by step like the kernel."""
    op, a = node.op, node.attrs
    ins, outs = roles(op)
    it = iter(xs)
    v = {role: next(it) for role, name in zip(ins, node.inputs) if name}
    x = v["X"] if a.layout == 0 else np.swapaxes(v["X"], 0, 1)
    steps, batch, _ = x.shape
    D, G, H = a.directions, GATES[op], a.hidden
    dt = x.dtype
    state = lambda name: (np.zeros((D, batch, H), dt) if name not in v  # noqa: E731
                          else v[name] if a.layout == 0 else np.swapaxes(v[name], 0, 1))
    h0, c0 = state("initial_h"), state("initial_c")
    bias = v.get("B", np.zeros((D, 2 * G * H), dt))
    lens = np.clip(v.get("sequence_lens", np.full(batch, steps)), 0, steps)
    y = np.zeros((steps, D, batch, H), dt)
    yh, yc = np.zeros((D, batch, H), dt), np.zeros((D, batch, H), dt)
    for d in range(D):
        p = v["P"][d] if "P" in v else None
        for n in range(batch):
            h, c = h0[d, n].copy(), c0[d, n].copy()
            count = int(lens[n])
            for s in range(count):
                t = count - 1 - s if a.reverse(d) else s
                h, c = _cell(op, a, d, x[t, n], h, c, v["W"][d], v["R"][d],
                             bias[d, :G * H], bias[d, G * H:], p)
                h, c = h.astype(dt), np.asarray(c, dt)
                y[t, d, n] = h
            if count:
                yh[d, n], yc[d, n] = h, c
    if a.layout:
        y, yh, yc = np.transpose(y, (2, 0, 1, 3)), np.swapaxes(yh, 0, 1), np.swapaxes(yc, 0, 1)
    results = {"Y": y, "Y_h": yh, "Y_c": yc, "work": np.zeros(work_size(op, H), dt)}
    return [results[role] for role in outs]


for _op in GATES:
    ir_op(_op, reference=_reference, macs=_macs, check=_check)
