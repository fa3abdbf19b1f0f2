"""edgecc verify: build the generated C, run it where the target runs it, and compare.

The target record's ``runner`` picks the check: ``host`` (host.py: gcc on this machine; the
float tolerance, the quantized graphs' per-layer checks of int8.py, PTQ's SQNR) or
``qemu-system-arm`` (cortex_m.py: firmware under QEMU bit-exact with the host build, the same
checks on the target's graph, the memory report). The reference everywhere is onnxruntime,
exact where its integer kernels depend on the CPU (reference.py).
"""
from typing import Optional, Tuple

from ..errors import EdgeccError
from ..targets.registry import get_target
from .cortex_m import verify_cortex_m_report
from .host import (  # noqa: F401
    DEFAULT_MIN_SQNR,
    Comparison,
    compare,
    format_report,
    host_report,
    load_inputs,
    onnxruntime_errors,
    random_inputs,
    reference_run,
    verify,
)

RUNNERS = {"host": host_report, "qemu-system-arm": verify_cortex_m_report}


def verify_report(path: str, target: str = "generic", inputs: Optional[str] = None,
                  per_layer: bool = False, input_shapes=None, tol: float = 1e-4,
                  sanitize: bool = False, min_sqnr: float = DEFAULT_MIN_SQNR,
                  workdir: Optional[str] = None, flash: Optional[int] = None,
                  **compile_options) -> Tuple[str, bool]:
    """What `edgecc verify` prints, and whether it passed (``flash``: a firmware's flash
    budget; ``compile_options`` go to compile_model)."""
    check = RUNNERS[get_target(target).runner]
    if compile_options.get("bind") and check is not host_report:
        raise EdgeccError(f"verify --target {target}: --bind (or --inputs feeding a shape "
                          "operand) is supported on host-run targets only")
    return check(path, target, inputs, per_layer, input_shapes, tol, sanitize, min_sqnr,
                 workdir, flash, **compile_options)
