"""The Cortex-M backend: CMSIS-NN s8 API calls for the ops CMSIS-NN has, NHWC layout
(passes/layout_nhwc.py); everything else falls back to the portable kernels."""
from . import kernels  # noqa: F401  registers the CMSIS-NN kernels
