"""Memory budgets (--sram, --flash): parse sizes, and refuse a model before the linker does."""
from __future__ import annotations

import re

from ..errors import EdgeccError

DEFAULT_STACK = 8 * 1024


def parse_size(text: str, option: str) -> int:
    """'320K', '1M', '262144' -> bytes (K = 1024)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)[iI]?[bB]?\s*", str(text))
    if not m:
        raise EdgeccError(f"{option} {text}: expected a size such as 256K, 1M or 65536")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def sram_needed(graph, plan, stack: int = DEFAULT_STACK) -> int:
    """SRAM bytes of a build: arena + output buffers + stack (see check_sram)."""
    return plan.arena_bytes + sum(graph.types[n].nbytes for n in graph.outputs) + stack


def check_sram(result, sram: int, stack: int = DEFAULT_STACK, reachable=None) -> None:
    """SRAM = arena (activations, kernel scratch) + the output
    buffers + stack. The caller's input buffers are read in place and not counted (they may
    live in flash).
    Raises a one-line error naming the layer at the arena's peak and the bytes over;
    ``reachable()`` -> (smallest arena, PatchPlan or None) adds the smallest SRAM edgecc can
    reach (compiler/driver.smallest_reachable), with the --patch grid when patching helps."""
    g, plan = result.graph, result.plan
    io = sum(g.types[n].nbytes for n in g.outputs)
    need = plan.arena_bytes + io + stack
    if need <= sram:
        return
    peak = max(range(len(plan.live_bytes)), key=lambda i: plan.live_bytes[i]) if g.nodes else 0
    layer = g.nodes[peak].name if g.nodes else "-"
    raise EdgeccError(
        f"{g.source}: needs {need:,} B of SRAM, {need - sram:,} B over --sram {sram:,} B "
        f"(arena {plan.arena_bytes:,} B, peak at layer '{layer}' ({g.nodes[peak].op}) with "
        f"{plan.live_bytes[peak]:,} B live; output buffers {io:,} B; stack {stack:,} B)"
        + (_reachable_note(reachable, io + stack) if reachable else ""))


def _reachable_note(reachable, fixed: int) -> str:
    arena, patch = reachable()
    how = ("layer by layer; --patch does not help" if patch is None else
           f"with --patch (grid {patch.grid[0]}x{patch.grid[1]})")
    return f"; smallest reachable: {arena + fixed:,} B (arena {arena:,} B) {how}"
