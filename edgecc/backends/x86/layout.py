"""The x86 targets' layout pass: NHWC for exactly the nodes an x86 kernel takes
(backends/layout_rule.py; kernel modules register with ``@accepts``)."""
from ..layout_rule import LayoutRule

RULE = LayoutRule("edgecc.backends.x86")
accepts, to_nhwc = RULE.accepts, RULE.to_nhwc
