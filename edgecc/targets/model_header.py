"""The C interface of generated model sources, read back from the model's header.

Target runners (firmware main, input data) work with any generated sources, so they take the
interface from `PREFIX_NUM_INPUTS`, `PREFIX_INPUTk_SHAPE`, `typedef T prefix_inputk_t;` etc.
rather than from the compiler's graph."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from ..backends.codegen import c_literal
from ..errors import EdgeccError
from ..ir import DType

_BY_CTYPE = {d.c_type: d for d in DType if d is not DType.BOOL and not d.is_narrow_float}


@dataclass(frozen=True)
class TensorInfo:
    index: int
    dtype: DType
    shape: Tuple[int, ...]
    size: int

    @property
    def shape_text(self) -> str:
        return "x".join(str(d) for d in self.shape) if self.shape else "scalar"

    @property
    def is_vector(self) -> bool:
        """1xN or N with N > 1: worth an argmax line."""
        return self.size > 1 and len(self.shape) in (1, 2) and self.shape[-1] == self.size


@dataclass(frozen=True)
class ModelInterface:
    prefix: str
    header: str
    inputs: List[TensorInfo]
    outputs: List[TensorInfo]


def _define(text: str, name: str) -> str:
    m = re.search(rf"^#define {name} (.+)$", text, re.M)
    if m is None:
        raise EdgeccError(f"generated header has no {name}")
    return m.group(1).strip()


def _tensor(text: str, prefix: str, kind: str, k: int) -> TensorInfo:
    P = f"{prefix.upper()}_{kind.upper()}{k}"
    rank = int(_define(text, f"{P}_RANK"))
    dims = [int(d) for d in re.findall(r"\d+", _define(text, f"{P}_SHAPE"))]
    shape = tuple(dims) if rank else ()
    m = re.search(rf"^typedef (\w+) {prefix}_{kind}{k}_t;$", text, re.M)
    if m is None or m.group(1) not in _BY_CTYPE:
        raise EdgeccError(f"generated header: no known C type for {kind} {k}")
    return TensorInfo(k, _BY_CTYPE[m.group(1)], shape, int(np.prod(shape, dtype=np.int64)))


def parse_interface(files: Dict[str, str]) -> ModelInterface:
    """Finds the model header (the .h defining PREFIX_NUM_INPUTS) and reads its tensors."""
    for name, text in sorted(files.items()):
        m = re.search(r"^#define (\w+)_NUM_INPUTS (\d+)$", text, re.M) if name.endswith(".h") \
            else None
        if m is None:
            continue
        prefix = m.group(1).lower()
        n_out = int(_define(text, f"{m.group(1)}_NUM_OUTPUTS"))
        return ModelInterface(prefix, name,
                              [_tensor(text, prefix, "input", k) for k in range(int(m.group(2)))],
                              [_tensor(text, prefix, "output", k) for k in range(n_out)])
    raise EdgeccError("no generated model header (with PREFIX_NUM_INPUTS) among the sources")


def render_input_rows(t: TensorInfo, value: np.ndarray, per_row: int = 8) -> List[str]:
    """C initializer rows (exact literals) for one input tensor's sample data."""
    arr = np.asarray(value)
    if arr.size != t.size:
        raise EdgeccError(f"sample for input {t.index} has {arr.size} elements, "
                          f"the model expects {t.size} ({t.shape_text})")
    flat = arr.astype(t.dtype.np_dtype).reshape(-1)
    if not t.dtype.is_float:
        per_row = 16
    items = [c_literal(v, t.dtype) for v in flat] or ["0"]
    return [", ".join(items[i:i + per_row]) for i in range(0, len(items), per_row)]
