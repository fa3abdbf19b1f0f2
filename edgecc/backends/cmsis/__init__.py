"""The Cortex-M backend: CMSIS-NN s8 API calls for the ops CMSIS-NN has, NHWC layout
(passes/layout_nhwc.py); everything else falls back to the portable kernels. Generated code
that calls CMSIS-NN ships edgecc's own implementation of those functions (runtime_c/cmsis_nn/)
unless the firmware links Arm's library."""
import os
from typing import Dict

from ..kernels import Backend
from . import kernels

RUNTIME = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "runtime_c",
                       "cmsis_nn")


def runtime_files(generated: Dict[str, str], target=None) -> Dict[str, str]:
    """edgecc's CMSIS-NN-compatible sources, shipped next to the model as cmsis_nn/ when the
    generated code calls CMSIS-NN."""
    if not any("arm_nnfunctions.h" in text for text in generated.values()):
        return {}
    files = {}
    for name in sorted(os.listdir(RUNTIME)) if os.path.isdir(RUNTIME) else []:
        if name.endswith((".c", ".h")):
            with open(os.path.join(RUNTIME, name)) as f:
                files[f"cmsis_nn/{name}"] = f.read()
    return files


BACKEND = Backend.collect("cmsis", os.path.join(os.path.dirname(__file__), "templates"),
                          [kernels], scratch=kernels.scratch_bytes, runtime_files=runtime_files,
                          epilogue="cmsis_status.c.j2")
