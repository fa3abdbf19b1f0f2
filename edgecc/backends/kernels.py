"""Kernels and backends.

A kernel function receives the ``EmitCtx`` and the node, and returns a ``Kernel``: which
template to render (a name in its own backend's template folder), its context, and the tensors
passed to the generated C function in order (inputs first, then outputs, matching the
template's parameter list); or None when it does not compute this node (the next backend of
the target's chain is asked).

    @kernel("Relu")
    def relu(ctx, node):
        return Kernel("unary.c.j2", {...}, args=[node.inputs[0], node.outputs[0]])

``@kernel`` only marks the function. A backend is a ``Backend`` record built from the modules
it lists (``Backend.collect``): its kernel table, its template folder (templates are looked up
as ``<backend>/<name>``, so one backend's template never stands in for another's), the arena
scratch its kernels need, the runtime files it ships and the status check its calls need.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..ir import DType, Graph, TensorType
from ..ir.lowbit import packed_bytes


@dataclass
class Kernel:
    template: str
    context: dict
    args: List[str]
    # Extra constant arrays the kernel needs (name suffix -> array), e.g. precomputed tables.
    tables: Dict[str, np.ndarray] = field(default_factory=dict)
    # Shared helper templates the kernel calls (rendered once, before the layers).
    needs: Tuple[str, ...] = ()
    # The kernel runs the node's in-place variant (the memory plan put its output over input
    # 0, MemoryPlan.inplace_nodes); codegen refuses a plan's in-place node without it.
    inplace: bool = False
    # Layer-specific values passed to the generated function instead of written into its
    # code, so layers of the same shape share one function: with ``table_args`` the tables
    # are parameters (the template names them by their suffix, after the tensors, in the
    # order of ``tables``), then the ``scalars`` (name -> an int, passed as int32, or a C
    # expression such as the scratch pointer), in order.
    table_args: bool = False
    scalars: Dict[str, object] = field(default_factory=dict)


def kernel(*ops: str):
    """Marks a function as the kernel of the IR ops ``ops`` (collected by Backend.collect)."""
    def mark(fn):
        fn.kernel_ops = tuple(ops)
        return fn
    return mark


@dataclass(frozen=True, eq=False)
class Backend:
    name: str
    template_dir: str
    kernels: Dict[str, Callable]                  # IR op -> kernel function
    # (graph, node) -> bytes of arena scratch the node's kernel needs on this backend
    scratch: Optional[Callable] = None
    # (the generated files, the Target record) -> the files shipped beside them (e.g. the
    # CMSIS-NN sources, x86's CMakeLists.txt with the target's flags)
    runtime_files: Optional[Callable] = None
    # a template rendered in the run function after the layers when a kernel of this backend
    # ran (e.g. the CMSIS-NN status check)
    epilogue: Optional[str] = None
    # (graph, node) -> scratch bytes of this backend's in-place variant of the node (its output
    # written over input 0 when that dies there, MemoryPlan.inplace_nodes), or None
    inplace: Optional[Callable] = None
    # a template rendered at the start of the run function when a kernel of this backend ran
    # (e.g. x86's CPU check, which returns <PREFIX>_ERROR_CPU); the header then lists that
    # status and the target's compiler flags (generate's ``cflags``)
    prologue: Optional[str] = None

    @classmethod
    def collect(cls, name: str, template_dir: str, modules, **fields) -> "Backend":
        """The backend whose kernels are the ``@kernel`` functions defined in ``modules``."""
        table: Dict[str, Callable] = {}
        for module in modules:
            for fn in vars(module).values():
                if getattr(fn, "__module__", None) != module.__name__:
                    continue
                for op in getattr(fn, "kernel_ops", ()):
                    if op in table:
                        raise ValueError(f"backend {name}: two kernels for IR op {op} "
                                         f"({table[op].__qualname__}, {fn.__qualname__})")
                    table[op] = fn
        return cls(name, template_dir, table, **fields)


@dataclass(frozen=True)
class TensorView:
    """A tensor as a template sees it."""

    name: str
    ctype: str
    shape: Tuple[int, ...]
    dtype: DType
    planes: int = 0        # bit planes of a packed (sub-byte) tensor (TensorType.planes)

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of storage (sub-byte types as bit planes, edgecc/ir/lowbit.py)."""
        return TensorType(self.dtype, self.shape).nbytes if not self.planes else \
            packed_bytes(self.shape, self.planes)

    @property
    def strides(self) -> Tuple[int, ...]:
        out, acc = [], 1
        for d in reversed(self.shape):
            out.append(acc)
            acc *= d
        return tuple(reversed(out))


def view(graph: Graph, name: str) -> TensorView:
    t: TensorType = graph.types[name]
    return TensorView(name, t.dtype.c_type, t.shape, t.dtype, t.planes if t.dtype.packed else 0)


def broadcast_strides(in_shape, out_shape) -> Tuple[int, ...]:
    """Element strides of ``in_shape`` read along ``out_shape`` (0 where broadcast)."""
    in_shape = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
    strides, acc = [0] * len(out_shape), 1
    for axis in range(len(out_shape) - 1, -1, -1):
        strides[axis] = 0 if in_shape[axis] == 1 and out_shape[axis] != 1 else acc
        acc *= in_shape[axis]
    return tuple(strides)


def collapse_loops(shape, *stride_lists):
    """Merge adjacent loop axes whose strides are contiguous in every operand.

    Returns (dims, [strides per operand]) with as few axes as possible (at least one).
    """
    dims = [d for d in shape]
    strides = [list(s) for s in stride_lists]
    keep = [i for i, d in enumerate(dims) if d != 1] or [len(dims) - 1] if dims else []
    dims = [dims[i] for i in keep] if dims else [1]
    strides = [[s[i] for i in keep] if s else [1] for s in strides]
    i = len(dims) - 1
    while i > 0:
        if all(s[i - 1] == s[i] * dims[i] for s in strides):
            dims[i - 1] *= dims[i]
            for s in strides:
                s[i - 1] = s[i]
                del s[i]
            del dims[i]
        i -= 1
    return dims, strides


def gemm_bias(graph: Graph, node, n: int) -> Optional[np.ndarray]:
    """A float Gemm/MatMul's constant bias as float32 [n] (zeros without one, or with beta 0),
    or None when its C is not a constant row of n (or 1) values with beta 1: what the SIMD
    fully connected kernels take."""
    if node.op == "MatMul" or len(node.inputs) < 3 or not node.inputs[2] \
            or node.attrs.beta == 0.0:
        return np.zeros(n, np.float32)
    name = node.inputs[2]
    t = graph.types[name]
    if (name not in graph.constants or t.dtype != DType.FLOAT32 or node.attrs.beta != 1.0
            or int(np.prod(t.shape)) not in (1, n) or (t.rank == 2 and t.shape[0] != 1)):
        return None
    return np.broadcast_to(graph.constants[name].astype(np.float32).reshape(-1), (n,)).copy()
