"""edgecc analyze: per-layer table and totals of the optimized, planned graph."""
from __future__ import annotations

import json
from typing import Dict, List

from .compiler.driver import CompileResult
from .ir.ops import op_info, op_macs
from .memory_report import memory_report
from .passes.fold_qdq import FOLD_RULES
from .passes.patch_plan import TILE_MOVES


def analysis(result: CompileResult) -> Dict:
    g, plan = result.graph, result.plan
    layers: List[Dict] = []
    for idx, node in enumerate(g.nodes):
        params = sum(g.types[i].numel for i in node.inputs if i and g.is_constant(i))
        outs = [o for o in node.outputs if o]
        act = getattr(node.attrs, "activation", None)
        layers.append(dict(
            index=idx, name=node.name, op=node.op + (f"+{act.kind}" if act else ""),
            inputs=[list(g.types[i].shape) for i in node.inputs if i and not g.is_constant(i)],
            outputs=[list(g.types[o].shape) for o in outs],
            macs=op_macs(g, node), params=params,
            arena_offset=plan.offset(outs[0]) if outs and outs[0] in plan.offsets else None,
            arena_bytes=sum(g.types[o].nbytes for o in outs),
            in_place=bool(outs and node.inputs and node.inputs[0] in plan.offsets
                          and outs[0] in plan.offsets
                          and plan.offset(outs[0]) == plan.offset(node.inputs[0])
                          and not op_info(node.op).alias),
            live_bytes=plan.live_bytes[idx] if idx < len(plan.live_bytes) else 0,
            dtype=g.types[outs[0]].dtype.name.lower() if outs else "",
            bits=_bits(g, node),
            weight_bytes=sum(int(g.constants[i].nbytes) for i in node.inputs
                             if i and i in g.constants),
            packed=any(g.types[t].dtype.packed for t in list(node.inputs) + outs if t),
        ))
    quantized = any(g.types[o].quant is not None for n in g.nodes for o in n.outputs if o)
    boundary = ("QuantizeLinear", "DequantizeLinear") + TILE_MOVES  # no arithmetic
    float_nodes = [node for layer, node in zip(layers, g.nodes)
                   if quantized and node.op not in boundary and layer["dtype"].startswith("float")
                   and not op_info(node.op).alias]
    float_layers = [node.name for node in float_nodes]
    producers = {o: n for n in g.nodes for o in n.outputs if o}
    float_reasons = {node.name: _float_reason(node, producers) for node in float_nodes}
    flash = sum(v.nbytes for v in g.constants.values())
    flash_by_type: Dict[str, int] = {}
    for name, v in sorted(g.constants.items()):
        key = g.types[name].dtype.name.lower()
        flash_by_type[key] = flash_by_type.get(key, 0) + int(v.nbytes)
    peak_idx = max(range(len(layers)), key=lambda i: layers[i]["live_bytes"]) if layers else None
    return dict(
        model=g.source, target=result.target,
        inputs={n: list(g.types[n].shape) for n in g.inputs},
        outputs={n: list(g.types[n].shape) for n in g.outputs},
        layers=layers,
        totals=dict(
            layers=len(layers), macs=sum(layer["macs"] for layer in layers),
            params=sum(int(v.size) for v in g.constants.values()),
            weights_flash_bytes=flash, weights_flash_by_type=flash_by_type,
            kernel_tables_flash_bytes=(result.const_bytes or {}).get("table_bytes", 0),
            arena_bytes=plan.arena_bytes,
            lower_bound_bytes=plan.lower_bound,
            arena_over_lower_bound=round(plan.arena_bytes / plan.lower_bound, 4)
            if plan.lower_bound else None,
            peak_layer=layers[peak_idx]["name"] if peak_idx is not None else None,
            quantized=quantized, float_layers=float_layers, float_reasons=float_reasons,
            low_bit=_low_bit(g),
        ),
        memory=memory_report(result).to_dict(),
    )


def _float_reason(node, producers) -> str:
    """Why a layer of a quantized model computes in float: fold-qdq has no int8 form of its
    op, or the model does not quantize its inputs (no DequantizeLinear feeds it), or the
    op's int8 rule refused this node."""
    if FOLD_RULES.get(node.op) is None:
        return f"no int8 kernel for {node.op}"
    if not any(i in producers and producers[i].op == "DequantizeLinear" for i in node.inputs):
        return "input not quantized in the model"
    return f"the int8 rule for {node.op} refused it"


def _bits(g, node) -> str:
    """The narrow widths a layer computes with, for the table: "w2a2" for a layer on bit
    planes (weights, input activations; "a2" for a pack or unpack), "w4" for weights
    quantized to fewer than 8 bits held as int8 values, "q4" for a QONNX quantizer's levels."""
    if node.op in ("FakeQuant", "FakeTrunc") and node.attrs.bits:
        return f"q{node.attrs.bits}"
    types = [g.types[i] for i in node.inputs[:2] if i]
    if node.op in ("QConvBits", "QConvPack"):
        w, x = (t.planes if t.dtype.packed else t.dtype.bits for t in (types[1], types[0]))
        return f"w{w}a{x}"
    if node.op in ("PackBits", "UnpackBits"):
        return f"a{next(t.planes for t in (types[0], g.types[node.outputs[0]]) if t.dtype.packed)}"
    widths = [g.types[i].quant.bits for i in node.inputs[1:2]
              if i and g.is_constant(i) and g.types[i].quant is not None]
    return f"w{widths[0]}" if widths and widths[0] < 8 else ""


def _low_bit(g) -> Dict:
    """Bytes of the low-bit layers' packed weights and of their packed activations, next to
    what the same tensors take at 8 bits (int8 weights and activations)."""
    weights = [n for n in g.constants if g.types[n].dtype.packed]
    acts = {t for n in g.nodes for t in list(n.inputs) + list(n.outputs)
            if t and t not in g.constants and g.types[t].dtype.packed}
    return dict(weight_bytes=sum(int(g.constants[n].nbytes) for n in weights),
                weight_bytes_int8=sum(g.types[n].numel for n in weights),
                activation_bytes=sum(g.types[t].nbytes for t in acts),
                activation_bytes_int8=sum(g.types[t].numel for t in acts))


def _shape(shapes) -> str:
    return ",".join("x".join(map(str, s)) for s in shapes)


def format_table(info: Dict) -> str:
    bits = any(layer.get("bits") for layer in info["layers"])  # a bits column where any
    rows = [f"{'#':>3}  {'layer':<28} {'op':<20} {'type':<7} " + ("bits " if bits else "")
            + f"{'input':<16} {'output':<16} "
            f"{'MACs':>10} {'params':>8} {'wbytes':>7} {'offset':>8} {'bytes':>8}"]
    for layer in info["layers"]:
        off = "-" if layer["arena_offset"] is None else str(layer["arena_offset"])
        name = layer["name"][:28]
        rows.append(f"{layer['index']:>3}  {name:<28} {layer['op'][:20]:<20} "
                    f"{layer['dtype'][:7]:<7} "
                    + (f"{layer.get('bits') or '-':<4} " if bits else "")
                    + f"{_shape(layer['inputs'])[:16]:<16} {_shape(layer['outputs'])[:16]:<16} "
                    f"{layer['macs']:>10} {layer['params']:>8} {layer['weight_bytes']:>7} "
                    f"{off:>8} "
                    f"{layer['arena_bytes']:>8}{'  in-place' if layer['in_place'] else ''}")
    t = info["totals"]
    rows += [
        "",
        f"model: {info['model']}   target: {info['target']}   layers: {t['layers']}",
        f"MACs: {t['macs']:,}   parameters: {t['params']:,}",
        f"flash (weights): {t['weights_flash_bytes']:,} bytes ("
        + ", ".join(f"{k} {v:,}" for k, v in t["weights_flash_by_type"].items())
        + f"); kernel tables (requantization, lookup): {t['kernel_tables_flash_bytes']:,} bytes",
        f"arena (peak SRAM for activations): {t['arena_bytes']:,} bytes",
        f"layer-by-layer lower bound: {t['lower_bound_bytes']:,} bytes "
        f"(peak at '{t['peak_layer']}'); arena / bound = {t['arena_over_lower_bound']}",
    ]
    mem = info.get("memory")
    if mem:
        rows.append(_memory_line(mem))
    lb = t.get("low_bit")
    if lb and lb["weight_bytes"]:
        rows.append(f"low-bit layers: packed weights {lb['weight_bytes']:,} bytes (int8: "
                    f"{lb['weight_bytes_int8']:,}), packed activations {lb['activation_bytes']:,}"
                    f" bytes (int8: {lb['activation_bytes_int8']:,})")
    if t["quantized"]:
        why: Dict[str, List[str]] = {}  # reason -> layers, in layer order
        for name in t["float_layers"]:
            why.setdefault(t["float_reasons"][name], []).append(name)
        rows.append("layers left in float (between Quantize/Dequantize): "
                    + ("; ".join(f"{reason}: {', '.join(names)}" for reason, names in why.items())
                       if why else "none"))
    return "\n".join(rows)


def _memory_line(mem: Dict) -> str:
    buffers = len({t["buffer"] for t in mem["tensors"]})
    scratch = mem["scratch"]
    return (f"memory plan: {len(mem['tensors'])} tensors in {buffers} arena buffers; kernel "
            + (f"scratch at {len(scratch)} nodes, up to {max(s['size'] for s in scratch):,} "
               "bytes" if scratch else "scratch: none")
            + " (offsets and lifetimes: --json 'memory')")


def to_json(info: Dict) -> str:
    return json.dumps(info, indent=2, sort_keys=True)
