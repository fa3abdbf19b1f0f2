"""The aarch64 targets' layout pass: NHWC for exactly the nodes a NEON kernel takes
(backends/layout_rule.py; kernel modules register with ``@accepts``)."""
from ..layout_rule import LayoutRule

RULE = LayoutRule("edgecc.backends.neon")
accepts, to_nhwc = RULE.accepts, RULE.to_nhwc
