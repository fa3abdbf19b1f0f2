"""Render a planned IR graph into C sources: ``<name>.h``, ``<name>.c``, ``<name>_weights.c``.

Each node becomes one ``static`` C function rendered from its kernel's Jinja2 template; the run
function calls the layers in order and copies the outputs out. Kernels read graph inputs (and
aliases of them) directly from the caller's const buffers; only intermediates live in the arena.
Output is a pure function of the graph: the same model gives byte-identical files.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import jinja2
import numpy as np

from ..errors import UnsupportedError
from ..ir import DType, Graph, IRError
from ..ir.ops import op_info
from ..passes.memory_plan import MemoryPlan
from . import kernels as K
from .kernels import Backend

# codegen's own templates (model.c, model.h, weights); a backend's are under "<backend>/"
CORE_TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")


def c_literal(value, dtype: DType) -> str:
    """An exact C literal for one element."""
    if dtype.is_narrow_float:  # the code (bit pattern) of a narrow float
        return str(int(np.asarray(value, dtype.np_dtype).view(f"u{dtype.itemsize}")))
    if dtype == DType.FLOAT32 or dtype == DType.FLOAT64:
        v = float(value)
        suffix = "f" if dtype == DType.FLOAT32 else ""
        if math.isnan(v):
            return "NAN"
        if math.isinf(v):
            return "INFINITY" if v > 0 else "-INFINITY"
        if dtype == DType.FLOAT32:
            text = np.format_float_scientific(np.float32(v), unique=True, trim="0")
        else:
            text = repr(v)
            if "e" not in text and "." not in text:
                text += ".0"
        return text + suffix
    v = int(value)
    if dtype == DType.INT64:
        return "(-INT64_C(9223372036854775807) - 1)" if v == -2**63 else f"INT64_C({v})"
    if dtype == DType.UINT64:
        return f"UINT64_C({v})"
    if dtype == DType.INT32 and v == -2**31:
        return "(-2147483647 - 1)"
    if dtype in (DType.UINT32,):
        return f"{v}u"
    return str(v)


def c_string(text: str) -> str:
    """Escape text for a C string literal."""
    return "".join(c if c.isalnum() or c in " _-.:/" else f"\\{ord(c):03o}" for c in text)


try:  # numpy's shortest round-trip formatter, as np.format_float_scientific calls it
    from numpy._core._multiarray_umath import dragon4_scientific as _dragon4
except ImportError:  # numpy 1.x
    try:
        from numpy.core.multiarray import dragon4_scientific as _dragon4
    except ImportError:
        _dragon4 = None

_PLAIN_INTS = (DType.INT8, DType.UINT8, DType.INT16, DType.UINT16)


def _items(flat: np.ndarray, dtype: DType) -> List[str]:
    """c_literal of every element (fast paths with the same text for the common types)."""
    if dtype.is_narrow_float:  # float16, bfloat16, float8, float4: their codes
        return list(map(str, flat.view(f"u{dtype.itemsize}").tolist()))
    if dtype in _PLAIN_INTS or (dtype == DType.INT32 and flat.size and flat.min() > -2**31):
        return list(map(str, flat.tolist()))
    if dtype == DType.FLOAT32 and _dragon4 is not None and np.isfinite(flat).all():
        try:
            return [_dragon4(x, precision=-1, unique=True, trim="0", sign=False, pad_left=-1,
                             exp_digits=-1, min_digits=-1) + "f"
                    for x in flat.astype(np.float32)]
        except TypeError:  # another numpy's signature: the public path below
            pass
    return [c_literal(v, dtype) for v in flat.tolist()]


def c_array_body(values: np.ndarray, dtype: DType, per_line: int = 8) -> str:
    flat = values.reshape(-1)
    if flat.size == 0:
        return "0"
    items = _items(flat, dtype)
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n    ".join(lines)


def make_env(extra_dirs: List[str] = (), backends: Sequence[Backend] = ()) -> jinja2.Environment:
    """Jinja2 for C: templates from ``extra_dirs`` and codegen's own folder by plain name, and
    each backend's as ``<backend name>/<template>`` (a backend's template can only be reached
    through its own name: it never replaces another backend's or codegen's)."""
    loader = jinja2.FileSystemLoader(list(extra_dirs) + [CORE_TEMPLATES])
    if backends:
        loader = jinja2.ChoiceLoader([jinja2.PrefixLoader(
            {b.name: jinja2.FileSystemLoader(b.template_dir) for b in backends}), loader])
    env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["c_literal"] = c_literal
    env.globals["DType"] = DType
    return env


class Identifiers:
    """Unique, valid C identifiers for tensor names."""

    def __init__(self):
        self.by_name: Dict[str, str] = {}
        self.used = set()

    def __call__(self, name: str, prefix: str = "") -> str:
        key = prefix + "\0" + name
        if key in self.by_name:
            return self.by_name[key]
        base = prefix + re.sub(r"\W", "_", name)
        if not re.match(r"[A-Za-z_]", base):
            base = "t_" + base
        ident, i = base, 1
        while ident in self.used:
            ident, i = f"{base}_{i}", i + 1
        self.used.add(ident)
        self.by_name[key] = ident
        return ident


@dataclass
class EmitCtx:
    """Shared state while rendering one model, handed to kernel functions."""

    graph: Graph
    plan: MemoryPlan
    prefix: str
    ids: Identifiers
    backends: List[Backend]
    node_index: int = -1

    def view(self, name: str) -> K.TensorView:
        return K.view(self.graph, name)

    def const(self, name: str):
        return self.graph.constants.get(name) if name else None

    def scratch(self, node) -> str:
        """C pointer expression of the node's scratch buffer in the arena (or 0)."""
        offset = self.plan.scratch_offsets.get(self.node_index)
        return "0" if offset is None else f"(void *)({self.prefix}_arena + {offset}u)"

    def inplace(self, node) -> bool:
        """The plan writes the node's output over its input 0 (its in-place variant)."""
        return self.node_index in self.plan.inplace_nodes


_FN = "EDGECC_KERNEL_FUNCTION_NAME"  # a kernel's name while its code is compared with others


def generate(graph: Graph, plan: MemoryPlan, prefix: str, backends: Sequence[Backend],
             stats: Optional[dict] = None, cflags: Sequence[str] = ()) -> Dict[str, str]:
    """C sources by file name; each node's kernel is the first of ``backends`` (a target's
    chain) that takes it; ``cflags``: the target's compiler flags, which the header states when
    a backend with a CPU check ran. ``stats``, if given, receives the bytes of const data:
    ``weights_bytes`` (graph constants) and ``table_bytes`` (kernel tables: requantization
    multipliers, lookup tables)."""
    env = make_env(backends=backends)
    ids = Identifiers()
    ctx = EmitCtx(graph, plan, prefix, ids, list(backends))
    used = []  # the backends whose kernels ran, in chain order (for their epilogues)
    weights = []        # (symbol, ctype, numel, body)
    weight_sym: Dict[str, str] = {}

    def weight_symbol(name: str, value: np.ndarray) -> str:
        if name not in weight_sym:
            dtype = DType.from_numpy(value.dtype)
            sym = ids(name, prefix=f"{prefix}_w_")
            weight_sym[name] = sym
            if stats is not None:
                key = "table_bytes" if name.startswith("\0") else "weights_bytes"
                stats[key] = stats.get(key, 0) + int(value.nbytes)
            weights.append((sym, dtype.c_type, max(value.size, 1),
                            c_array_body(value, dtype), value.size))
        return weight_sym[name]

    in_ident = {n: ids(n, prefix="in_") for n in graph.inputs}

    def pointer(name: str, ctype: str) -> str:
        if name in graph.constants:
            return weight_symbol(name, graph.constants[name])
        if name in plan.external:  # the caller's buffer: the run function's const parameter
            return f"(const {ctype} *){in_ident[plan.external[name]]}"
        return f"({ctype} *)({prefix}_arena + {plan.offset(name)}u)"

    layers, calls, helpers = [], [], []
    table_of: Dict[tuple, str] = {}     # table contents -> symbol
    function_of: Dict[str, str] = {}    # kernel code (named _FN) -> C function name
    for idx, node in enumerate(graph.nodes):
        check = op_info(node.op).check  # what validation promised the kernels
        broken = check(graph, node) if check else None
        if broken:
            raise IRError(f"codegen: node '{node.name}' ({node.op}) breaks its rule: {broken}")
        if op_info(node.op).alias:
            if (plan.offsets.get(node.inputs[0]) != plan.offsets.get(node.outputs[0])
                    or plan.external.get(node.inputs[0]) != plan.external.get(node.outputs[0])):
                raise IRError(f"alias node '{node.name}' ({node.op}) does not share its input's "
                              "buffer (a constant input must be folded first)")
            calls.append(f"/* {node.op} '{node.name}': {node.outputs[0]} aliases "
                         f"{node.inputs[0]} (no code) */")
            continue
        ctx.node_index = idx
        k = None
        for backend in ctx.backends:  # the first backend whose kernel takes the node
            fn = backend.kernels.get(node.op)
            k = fn(ctx, node) if fn else None
            if k is not None:
                break
        if k is None:
            raise UnsupportedError(f"{node.origin.describe()}: no C kernel for IR op '{node.op}' "
                                   f"on backends {', '.join(b.name for b in ctx.backends)}")
        if backend not in used:
            used.append(backend)
        if ctx.inplace(node) and not k.inplace:
            raise IRError(f"node '{node.name}' ({node.op}) is planned in place but its "
                          f"kernel has no in-place variant")
        for h in k.needs:  # helper templates, by name in the kernel's backend
            if f"{backend.name}/{h}" not in helpers:
                helpers.append(f"{backend.name}/{h}")
        fname = ids(f"L{idx}_{node.op.lower()}_{node.name or node.outputs[0]}", prefix="")
        tables = {}
        for suffix, arr in k.tables.items():  # equal tables (e.g. one layer's tiles): one copy
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key not in table_of:
                table_of[key] = weight_symbol(f"\0{fname}_{suffix}", arr)
            tables[suffix] = table_of[key]
        body = env.get_template(f"{backend.name}/{k.template}").render(
            fn=_FN, node=node, tables={s: s for s in tables} if k.table_args else tables,
            **k.context).strip()
        shapes = ", ".join(str(graph.types[o]) for o in node.outputs if o)
        if body in function_of:  # the same code as an earlier node (a patched stage's tiles)
            fname = function_of[body]
            calls.append(f"/* node {idx}: {node.op} '{node.name}' -> {shapes}: same code as "
                         f"{fname} */")
        else:
            function_of[body] = fname
            layers.append(f"/* node {idx}: {node.op} '{node.name}' -> {shapes} */\n"
                          + body.replace(_FN, fname) + "\n")
        args = []
        for a in k.args:
            if a in plan.external and a in node.outputs:
                raise IRError(f"node '{node.name}' ({node.op}) would write graph input "
                              f"'{plan.external[a]}'")
            ctype = graph.types[a].dtype.c_type
            args.append(pointer(a, ctype))
        if k.table_args:
            args += tables.values()
        args += [v if isinstance(v, str) else str(int(v)) for v in k.scalars.values()]
        calls.append(f"{fname}({', '.join(args)});")
        for o in node.outputs:
            if o and o not in graph.constants:
                nbytes = graph.types[o].nbytes
                calls.append(f'EDGECC_TRACE_TENSOR("{c_string(o)}", {prefix}_arena + '
                             f'{plan.offset(o)}u, {nbytes}u);')

    io_inputs = [dict(name=n, ident=in_ident[n], view=ctx.view(n)) for n in graph.inputs]
    io_outputs = []
    for n in graph.outputs:
        entry = dict(name=n, ident=ids(n, prefix="out_"), view=ctx.view(n))
        if n in graph.constants or n in plan.external:
            entry["source"] = pointer(n, graph.types[n].dtype.c_type)
        else:
            entry["source"] = f"{prefix}_arena + {plan.offset(n)}u"
        io_outputs.append(entry)

    uses_arena = bool(plan.scratch_offsets) or any(f"{prefix}_arena" in c for c in calls) or any(
        "source" in o and f"{prefix}_arena" in o["source"] for o in io_outputs)
    common = dict(uses_arena=uses_arena, prefix=prefix, PREFIX=prefix.upper(), graph=graph, plan=plan,
                  inputs=io_inputs, outputs=io_outputs, weights=weights,
                  source=os.path.basename(graph.source))
    epilogues = [env.get_template(f"{b.name}/{b.epilogue}").render(**common).rstrip("\n")
                 for b in ctx.backends if b in used and b.epilogue]
    prologues = [env.get_template(f"{b.name}/{b.prologue}").render(**common).rstrip("\n")
                 for b in ctx.backends if b in used and b.prologue]
    common.update(cpu_status=bool(prologues), cflags=list(cflags) if prologues else [])
    return {
        f"{prefix}.h": env.get_template("model.h.j2").render(**common),
        f"{prefix}.c": env.get_template("model.c.j2").render(
            layers=layers, calls=calls, epilogues=epilogues, prologues=prologues,
            helpers=[env.get_template(h).render().strip() + "\n" for h in helpers], **common),
        f"{prefix}_weights.h": env.get_template("weights.h.j2").render(**common),
        f"{prefix}_weights.c": env.get_template("weights.c.j2").render(**common),
    }
