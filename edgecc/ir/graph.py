"""The edgecc graph IR: nodes with typed attributes, static tensor types, constant data.

``Graph.nodes`` is always in a valid execution (topological) order. Tensor names are unique;
an absent optional input is the empty string. ``Graph.verify()`` checks the invariants and is
run by the tests after every pass.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Tuple

import numpy as np

from .types import DType, TensorType


class IRError(Exception):
    """An IR invariant is broken (a compiler bug, not a user error)."""


@dataclass(frozen=True)
class Origin:
    """Where a node came from, for error messages."""

    model: str = "<memory>"
    node: str = ""
    op: str = ""
    opset: int = 0

    def describe(self) -> str:
        return f"{self.model}: node '{self.node}' ({self.op}, opset {self.opset})"


@dataclass(frozen=True)
class NoAttrs:
    """Attributes of ops that have none."""


@dataclass(frozen=True)
class Node:
    op: str
    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]
    attrs: Any = NoAttrs()
    name: str = ""
    origin: Origin = Origin()

    def replace(self, **changes) -> "Node":
        return dataclasses.replace(self, **changes)


@dataclass
class Graph:
    name: str
    nodes: List[Node]
    inputs: List[str]
    outputs: List[str]
    types: Dict[str, TensorType]
    constants: Dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "<memory>"

    # -- queries ---------------------------------------------------------------------------
    def type_of(self, name: str) -> TensorType:
        return self.types[name]

    def is_constant(self, name: str) -> bool:
        return name in self.constants

    def producers(self) -> Dict[str, Node]:
        return {out: n for n in self.nodes for out in n.outputs if out}

    def consumers(self) -> Dict[str, List[Node]]:
        users: Dict[str, List[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    users.setdefault(i, []).append(n)
        return users

    def use_count(self, name: str) -> int:
        count = sum(1 for n in self.nodes for i in n.inputs if i == name)
        return count + sum(1 for o in self.outputs if o == name)

    def copy(self) -> "Graph":
        return Graph(self.name, list(self.nodes), list(self.inputs), list(self.outputs),
                     dict(self.types), dict(self.constants), self.source)

    def add_constant(self, name: str, value: np.ndarray) -> str:
        value = np.asarray(value)
        value = np.ascontiguousarray(value).reshape(value.shape)  # keeps 0-d arrays 0-d
        self.constants[name] = value
        self.types[name] = TensorType(DType.from_numpy(value.dtype), tuple(value.shape))
        return name

    def fresh_name(self, base: str) -> str:
        if base not in self.types:
            return base
        i = 1
        while f"{base}_{i}" in self.types:
            i += 1
        return f"{base}_{i}"

    def remove_unused(self) -> None:
        """Drop type entries and constants no node or graph output refers to."""
        used = set(self.inputs) | set(self.outputs)
        for n in self.nodes:
            used.update(n.inputs)
            used.update(n.outputs)
        used.discard("")
        self.constants = {k: v for k, v in self.constants.items() if k in used}
        self.types = {k: v for k, v in self.types.items() if k in used}

    # -- invariants ------------------------------------------------------------------------
    def verify(self) -> None:
        defined = set(self.inputs) | set(self.constants)
        for name in defined:
            if name not in self.types:
                raise IRError(f"tensor '{name}' has no type")
        for name, value in self.constants.items():
            t = self.types[name]
            if t.dtype.packed:  # stored as its bit planes (edgecc/ir/lowbit.py)
                want = t.shape[:-1] + (t.planes, (t.shape[-1] + 7) // 8) if t.shape else ()
                if tuple(value.shape) != want or value.dtype != np.uint8:
                    raise IRError(f"constant '{name}' is {value.dtype}{value.shape}, typed {t} "
                                  f"(bit planes: uint8{want})")
            elif tuple(value.shape) != t.shape or value.dtype != t.dtype.np_dtype:
                raise IRError(f"constant '{name}' is {value.dtype}{value.shape}, typed {t}")
        for node in self.nodes:
            for i in node.inputs:
                if i and i not in defined:
                    raise IRError(f"node '{node.name}' ({node.op}) reads '{i}' before it is defined")
            for o in node.outputs:
                if not o:
                    continue
                if o in defined:
                    raise IRError(f"tensor '{o}' is defined twice (node '{node.name}')")
                if o not in self.types:
                    raise IRError(f"output '{o}' of node '{node.name}' has no type")
                if any(d < 0 for d in self.types[o].shape):
                    raise IRError(f"tensor '{o}' has a dynamic shape {self.types[o].shape}")
                defined.add(o)
        for o in self.outputs:
            if o not in defined:
                raise IRError(f"graph output '{o}' is never produced")

    def __str__(self) -> str:
        lines = [f"graph {self.name}({', '.join(f'{i}: {self.types[i]}' for i in self.inputs)})"]
        for n in self.nodes:
            ins = ", ".join(i or "_" for i in n.inputs)
            outs = ", ".join(f"{o}: {self.types[o]}" for o in n.outputs if o)
            lines.append(f"  {outs} = {n.op}({ins})")
        lines.append(f"  return {', '.join(self.outputs)}")
        return "\n".join(lines)


def op_sequence(graph: Graph) -> List[str]:
    """The ops of a graph in order: what Before/Expected pass tests compare."""
    return [n.op for n in graph.nodes]


def attrs_replace(attrs, **changes):
    return dataclasses.replace(attrs, **changes)


def iter_tensors(nodes: Iterable[Node]) -> Iterable[str]:
    for n in nodes:
        yield from (t for t in n.inputs if t)
        yield from (t for t in n.outputs if t)
