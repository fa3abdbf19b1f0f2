"""`edgecc analyze --plot FILE.png`: live bytes per layer, layer by layer beside patch-based.

The model is compiled twice with the analyze command's options, ``patch=False`` and
``patch=True``; each panel draws ``memory_report(result).live_bytes`` against the node index of
its own graph (the patched graph has one node per tile and layer, so it is longer), with a line
at the arena and at the ``--sram`` budget. When no patched plan beats layer by layer only the
layer-by-layer panel is drawn and the title says so.

matplotlib is an optional extra (``pip install 'edgecc[plot]'``), imported only here; the Agg
backend draws without a display, and the PNG carries no software or time stamp, so the same
model and options give the same bytes.
"""
from __future__ import annotations

import os
from typing import Optional

from .compiler.driver import compile_model, layer_by_layer
from .errors import EdgeccError
from .memory_report import MemoryReport, memory_report
from .passes.patch_plan import is_tile_node

KIB = 1024.0
_LAYER_COLOR, _PATCH_COLOR, _BUDGET_COLOR = "#1f77b4", "#2ca02c", "#d62728"


def require_matplotlib():
    """matplotlib.pyplot on the Agg backend, or a one-line error naming the extra."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgeccError("--plot needs matplotlib: pip install 'edgecc[plot]'") from None
    return plt


def _kib(n: int) -> str:
    return f"{n / KIB:,.1f} KiB"


def _panel(ax, report: MemoryReport, color: str, title: str, stage=None) -> None:
    """Live bytes as steps (one per node), the arena line, the peak named; ``stage``: the
    (first, last) node of the patched stage, shaded."""
    y = [b / KIB for b in report.live_bytes]
    edges = [i - 0.5 for i in range(len(y) + 1)]  # node i covers [i - 0.5, i + 0.5]
    if stage:
        ax.axvspan(stage[0] - 0.5, stage[1] + 0.5, color=_PATCH_COLOR, alpha=0.08, lw=0)
        ax.text(stage[0], 0.98, " patched stage", transform=ax.get_xaxis_transform(),
                ha="left", va="top", fontsize=8, color=_PATCH_COLOR)
    ax.stairs(y, edges, fill=True, color=color, alpha=0.25, lw=0)
    ax.stairs(y, edges, color=color, lw=1.2, label="live bytes")
    ax.axhline(report.arena_bytes / KIB, color=color, ls="--", lw=1,
               label=f"arena {_kib(report.arena_bytes)}")
    peak = report.peak_node_index
    left = peak > 0.6 * len(y)  # label on the side with room
    ax.annotate(f"peak: node {peak}, {report.peak_layer[-40:]}",
                (peak, report.peak_bytes / KIB), xytext=(0, 4), textcoords="offset points",
                fontsize=7, va="bottom", ha="right" if left else "left", color="#333333")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("node index")
    ax.set_xlim(-0.5, max(len(y) - 0.5, 0.5))
    ax.grid(True, axis="y", color="#dddddd", lw=0.6)


def _patch_title(plan, result, stage) -> str:
    pct = 100.0 * plan.extra_macs / max(plan.macs_before, 1)
    first, last = stage or (plan.start, plan.end)
    return (f"patch-based ({len(result.graph.nodes)} nodes): grid {plan.grid[0]}x{plan.grid[1]} "
            f"on layer-by-layer nodes {first}..{last}\nextra MACs {plan.extra_macs:,} "
            f"(+{pct:.1f}% of the stage), arena {_kib(result.plan.arena_bytes)}")


def _tile_span(graph):
    idx = [i for i, n in enumerate(graph.nodes) if is_tile_node(n)]
    return (idx[0], idx[-1]) if idx else None


def _stage_span(graph, plan):
    """The stage's nodes in the layer-by-layer graph: plan.start to the node writing the stage
    output (renamed ``<name>_nhwc`` by the NHWC layout pass on Cortex-M targets)."""
    names = (plan.stage_output, plan.stage_output + "_nhwc")
    ends = [i for i, n in enumerate(graph.nodes) if any(o in names for o in n.outputs)]
    return (plan.start, ends[0]) if ends else None


def draw(path: str, layer, patched, title: str, sram: Optional[int] = None,
         no_patch_reason: str = "") -> None:
    """Write the PNG: ``layer`` and ``patched`` are CompileResults (``patched`` None: one panel)."""
    plt = require_matplotlib()
    reports = [memory_report(layer)] + ([memory_report(patched)] if patched else [])
    fig, axes = plt.subplots(1, len(reports), sharey=True, squeeze=False,
                             figsize=(6.0 * len(reports) + 1.0, 4.6), dpi=110)
    axes = axes[0]
    layer_title = (f"layer by layer ({len(layer.graph.nodes)} nodes), arena "
                   f"{_kib(reports[0].arena_bytes)}")
    stage = _stage_span(layer.graph, patched.patch) if patched else None
    _panel(axes[0], reports[0], _LAYER_COLOR, layer_title, stage)
    if patched:
        _panel(axes[1], reports[1], _PATCH_COLOR, _patch_title(patched.patch, patched, stage),
               _tile_span(patched.graph))
    top = max(r.arena_bytes for r in reports) / KIB
    shown = sram is not None and sram / KIB <= 2 * top  # a far larger budget would flatten all
    for ax in axes:
        if sram is not None:
            ax.axhline(sram / KIB, color=_BUDGET_COLOR, ls=":", lw=1.4,
                       label=f"--sram {_kib(sram)} (arena + outputs + stack)"
                       + ("" if shown else ", above the plot"))
        ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    axes[0].set_ylabel("live bytes (KiB)")
    top = max(top, sram / KIB if shown else 0)
    rows = 2 + (sram is not None)  # legend entries: room above the top line for them
    axes[0].set_ylim(0, top / (1 - 0.06 * rows - 0.06) or 1)
    fig.suptitle(title + ("" if patched else f"\npatch-based: {no_patch_reason}"), fontsize=11)
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", metadata={"Software": None})
    except OSError as e:
        raise EdgeccError(f"--plot: cannot write {path}: {e.strerror}") from None
    finally:
        plt.close(fig)


def plot_analyze(path: str, model: str, target: str, kwargs: dict, result) -> None:
    """`edgecc analyze --plot`: ``result`` is the analyze command's CompileResult, compiled with
    ``kwargs`` (compile_model's keywords, ``patch`` among them); the other series is built
    here. Layer by layer is drawn even when it is over the SRAM budget (the point of the plot):
    for a patched result it is driver.layer_by_layer's build of the same graph (no budget
    check, no second import or calibration)."""
    require_matplotlib()
    if result.patch is not None:
        layer, patched = layer_by_layer(result), result
    else:
        layer = result
        patched = (None if kwargs.get("patch") is True else
                   compile_model(model, target, **dict(kwargs, patch=True)))
    if patched is not None and patched.patch is None:
        patched = None
    sram = kwargs.get("sram")
    reason = "no patched plan lowers the arena (patches tile int8 CNN stages)"
    draw(path, layer, patched, f"{os.path.basename(model)} on {target}: live arena bytes per layer",
         sram, reason)
