"""Estimated instructions per node, for choosing among patch plans (compiler/driver.py weighs
the halos' extra instructions, not only their MACs; issue 12).

A target's ``CostModel`` gives, per kind of node, instructions per MAC, per output element,
per output pixel (N H W) and per call, read on the graph before the layout pass (NCHW). The
kinds: ``conv`` (one group, kernel larger than 1x1), ``pointwise`` (one group, 1x1),
``depthwise`` (more than one group), else the IR op's name, else ``default``. Only
differences between plans of one model matter, so the model is linear and coarse.

``CORTEX_M`` was fitted by hand on the per-layer counts (-DEDGECC_PROFILE, QEMU -icount
shift=0) of MobileNetV2-0.35@144 int8 layer by layer on cortex-m7: pointwise per MAC plus per
output (the requantization), depthwise per MAC plus per pixel (the tap pointers), the first
3x3 convolution per MAC, QuantizeLinear per element plus the transpose to NHWC that follows
it on Cortex-M, QAdd and the tile copies per element. tests/test_patch_mbv2.py checks the
estimate where it matters: the chosen plan's extra instructions within 30 % of QEMU's count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Tuple

from ..ir.ops import op_macs


@dataclass(frozen=True)
class Costs:
    mac: float = 0.0
    element: float = 0.0
    pixel: float = 0.0
    call: float = 0.0


@dataclass(frozen=True)
class CostModel:
    kinds: Tuple[Tuple[str, Costs], ...]

    def __post_init__(self):
        object.__setattr__(self, "_table", dict(self.kinds))

    def kind(self, node) -> str:
        if node.op in ("QConv", "Conv", "QConvNHWC"):
            a = node.attrs
            if a.group > 1:
                return "depthwise"
            return "pointwise" if all(k == 1 for k in a.kernel) else "conv"
        return node.op

    def __call__(self, graph, node) -> float:
        """Estimated instructions of ``node``."""
        table: Dict[str, Costs] = self._table
        kind = self.kind(node)
        c = table.get(kind, table["default"])
        out = graph.types[node.outputs[0]].shape if node.outputs and node.outputs[0] else ()
        elements = math.prod(out) if out else 0
        pixels = math.prod(out[:1] + out[2:]) if len(out) >= 3 else elements
        if not c.mac:
            macs = 0
        elif node.op in ("QConv", "Conv"):  # op_macs of an NCHW convolution, without numpy
            macs = elements * math.prod(graph.types[node.inputs[1]].shape[1:])
        else:
            macs = op_macs(graph, node)
        return c.mac * macs + c.element * elements + c.pixel * pixels + c.call


GENERIC = CostModel((("default", Costs(mac=1.0, element=1.0)),))

CORTEX_M = CostModel((
    ("pointwise", Costs(mac=1.45, element=11.0, call=100.0)),
    ("depthwise", Costs(mac=3.5, pixel=197.0, call=100.0)),
    ("conv", Costs(mac=1.96, element=2.0, call=100.0)),
    ("QuantizeLinear", Costs(element=28.3, call=100.0)),
    ("QAdd", Costs(element=21.0, call=100.0)),
    ("TileCopy", Costs(element=1.5, call=50.0)),
    ("TilePaste", Costs(element=1.0, call=50.0)),
    ("default", Costs(mac=2.0, element=10.0, call=100.0)),
))
