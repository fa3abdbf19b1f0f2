"""The optimization pipeline: an explicit, ordered list of passes."""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

from ..errors import EdgeccError
from ..ir import Graph
from .cleanup import eliminate_dead_code, remove_identities
from .constant_folding import fold_constants
from .fold_batchnorm import fold_batchnorm
from .fold_qdq import fold_qdq
from .fuse_activation import fuse_activation
from .lower_bits import lower_bits
from .reorder import reorder_for_memory

PIPELINE: List[Tuple[str, Callable[[Graph], Graph]]] = [
    ("fold-constants", fold_constants),
    ("remove-identities", remove_identities),
    ("fold-batchnorm", fold_batchnorm),
    ("fuse-activation", fuse_activation),
    ("fold-qdq", fold_qdq),
    ("lower-bits", lower_bits),
    ("dead-code", eliminate_dead_code),
    ("reorder", reorder_for_memory),
]


def run_pipeline(graph: Graph, skip: Sequence[str] = ()) -> Graph:
    unknown = set(skip) - {name for name, _ in PIPELINE}
    if unknown:
        raise EdgeccError(f"unknown pass(es) {', '.join(sorted(unknown))}; known: "
                          + ", ".join(name for name, _ in PIPELINE))
    for name, fn in PIPELINE:
        if name in skip:
            continue
        graph = fn(graph)
        graph.verify()
    return graph
