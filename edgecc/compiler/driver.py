"""compile_model: ONNX file -> IR -> passes -> memory plan -> C files."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from ..errors import EdgeccError
from ..ir import Graph
from ..passes.memory_plan import MemoryPlan, plan_memory
from ..passes.pipeline import run_pipeline
from .frontend import import_onnx

TARGETS = {
    # target -> backend chain (first match wins; generic covers every op)
    "generic": ["generic"],
}


@dataclass
class CompileResult:
    graph: Graph
    plan: MemoryPlan
    files: Dict[str, str]
    prefix: str
    target: str


def check_name(prefix: str) -> str:
    import re
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise EdgeccError(f"--name '{prefix}' is not a valid C identifier")
    return prefix


def optimize(path: str, input_shapes=None, model=None, skip_passes: Sequence[str] = ()) -> Graph:
    graph = import_onnx(path, input_shapes, model=model)
    return run_pipeline(graph, skip=skip_passes)


def compile_model(path: str, target: str = "generic", input_shapes=None, prefix: str = "model",
                  model=None, skip_passes: Sequence[str] = ()) -> CompileResult:
    from ..backends.codegen import generate

    if target not in TARGETS:
        raise EdgeccError(f"unknown --target '{target}'; known: {', '.join(TARGETS)}")
    check_name(prefix)
    graph = optimize(path, input_shapes, model=model, skip_passes=skip_passes)
    plan = plan_memory(graph)
    files = generate(graph, plan, prefix, TARGETS[target])
    return CompileResult(graph, plan, files, prefix, target)


def write_files(files: Dict[str, str], out_dir: str) -> None:
    try:
        os.makedirs(out_dir, exist_ok=True)
        for name, text in sorted(files.items()):
            with open(os.path.join(out_dir, name), "w", newline="\n") as f:
                f.write(text)
    except OSError as e:
        raise EdgeccError(f"cannot write to {out_dir}: {e.strerror}") from None
