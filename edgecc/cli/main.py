"""The edgecc command line.

    edgecc MODEL.onnx [--target generic] [-o OUT/]        compile to C
    edgecc MODEL.onnx --quantize int8 --calib DATA         ... quantized after training
    edgecc verify MODEL.onnx [--inputs F] [--per-layer]    build, run, compare with onnxruntime
    edgecc analyze MODEL.onnx [--json]                     per-layer table and memory totals

Exit codes: 0 success, 1 verification mismatch, 2 bad input (one-line error on stderr).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .. import __version__
from ..errors import EdgeccError
from ..targets.registry import (DEFAULT_KERNELS, TARGETS, get_target, kernel_set_names,
                                with_board)

COMMANDS = ("compile", "verify", "analyze")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other user error
        self.exit(2, f"edgecc: error: {message} (see edgecc --help)\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--target", default="generic", choices=sorted(TARGETS),
                   help="code generation target (default: generic, portable C)")
    p.add_argument("--kernels", default=DEFAULT_KERNELS, choices=kernel_set_names(),
                   help=f"the target's kernel set (default: {DEFAULT_KERNELS}, edgecc's own "
                   "kernels; cmsis-nn: CMSIS-NN API calls only, for Arm's library on Cortex-M)")
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                   help="bind a model input's dynamic dims (repeatable)")
    p.add_argument("--bind", action="append", metavar="NAME=FILE",
                   help="compile for one value of a model input (.npy, or .npz holding NAME): "
                   "for inputs that decide shapes (a Reshape's shape, reduction axes, Resize "
                   "sizes); repeatable")
    p.add_argument("--name", default="model", help="C symbol prefix and file name (default: model)")
    p.add_argument("--skip-pass", action="append", default=[], metavar="PASS",
                   help="disable an optimization pass (for debugging)")


def _quantize_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("post-training quantization")
    g.add_argument("--quantize", choices=["int8", "w4a8", "w4a4", "w2a2", "w1a1"],
                   help="quantize a float model (needs --calib): int8 activations per tensor, "
                   "int8 weights per channel; wNaM: the convolutions between the first and "
                   "last layers with N-bit weights and M-bit activations (bit planes at 4 "
                   "bits and below), the rest int8")
    g.add_argument("--bits", metavar="FILE|auto", help="with --quantize wNaM: per-layer "
                   "widths, lines 'LAYER w1a1|w2a2|w4a4|w4a8|int8|auto'; 'auto' keeps the layers "
                   "whose weights lose the most at the mode's width at int8")
    g.add_argument("--calib", metavar="DATA", help="calibration samples: .npz (keyed by input "
                   "name), .npy, a folder of .npy, or test_data_set_* folders")
    g.add_argument("--calib-method", choices=["minmax", "percentile", "entropy"],
                   help="activation ranges: min-max (default), percentile, or entropy (KL)")
    g.add_argument("--calib-percentile", type=float, metavar="P",
                   help="percentile for --calib-method percentile (default 99.99)")
    g.add_argument("--quantize-exclude", metavar="NODE,...", action="append", default=[],
                   help="node names that stay float (comma-separated, repeatable)")


def _budget_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("memory budget (Cortex-M targets default to their board's)")
    g.add_argument("--sram", metavar="SIZE", help="SRAM budget, e.g. 256K: arena + outputs + stack "
                   "must fit, else a one-line error names the peak layer and the bytes over")
    g.add_argument("--flash", metavar="SIZE", help="flash budget for --emit-project's linker "
                   "script, e.g. 1M")
    g.add_argument("--stack", metavar="SIZE", default="8K", help="stack reserved in SRAM "
                   "(default 8K)")
    g.add_argument("--patch", dest="patch", action="store_const", const=True, default="auto",
                   help="run the first stage of an int8 CNN tile by tile (patch-based, the "
                   "plan with the smallest peak) even when layer by layer fits; by default "
                   "edgecc patches only when the layer-by-layer arena does not fit the SRAM")
    g.add_argument("--no-patch", dest="patch", action="store_const", const=False,
                   help="never patch: layer by layer only")
    g.add_argument("--patch-overhead", metavar="PCT", type=float, default=10.0,
                   help="most extra instructions the patches may add (halos, tile copies; "
                   "as the target's cost model estimates them), in %% of the model's "
                   "(default 10); a costlier plan only when none within it fits --sram")


def _budget_kwargs(args) -> dict:
    from ..compiler.budget import parse_size
    return dict(sram=parse_size(args.sram, "--sram") if args.sram else None,
                stack=parse_size(args.stack, "--stack"), patch=args.patch,
                patch_overhead=_percent(args.patch_overhead, "--patch-overhead"))


def _percent(value: float, option: str) -> float:
    if not 0.0 <= value <= 1000.0:
        raise EdgeccError(f"{option} {value:g}: expected a percentage in [0, 1000]")
    return value / 100.0


def _bind_kwargs(args, inputs: Optional[str] = None) -> dict:
    """compile_model's ``bind``: the --bind values, and for verify the inputs feeding
    compile-time operands taken from --inputs (compiler/bind.py)."""
    from ..compiler.bind import binds_from_inputs, read_binds
    from ..compiler.loader import read_model
    bind = read_binds(args.bind)
    if inputs:
        found = binds_from_inputs(read_model(args.model), inputs)
        bind.update({k: v for k, v in found.items() if k not in bind})
    return dict(bind=bind) if bind else {}


def _quantize_kwargs(args) -> dict:
    """compile_model keyword arguments from _quantize_args' flags, checked together."""
    exclude = [n.strip() for spec in args.quantize_exclude for n in spec.split(",") if n.strip()]
    if not args.quantize:
        given = [flag for flag, value in (("--calib", args.calib),
                                          ("--calib-method", args.calib_method),
                                          ("--calib-percentile", args.calib_percentile),
                                          ("--quantize-exclude", exclude),
                                          ("--bits", args.bits)) if value]
        if given:
            raise EdgeccError(f"{given[0]} is only used with --quantize int8")
        return {}
    if not args.calib:
        raise EdgeccError(f"--quantize {args.quantize} needs calibration data: --calib DATA "
                          "(.npz, .npy, a folder of .npy, or test_data_set_* folders)")
    if args.calib_percentile is not None and args.calib_method != "percentile":
        raise EdgeccError("--calib-percentile is only used with --calib-method percentile")
    return dict(quantize=args.quantize, calib=args.calib, bits=args.bits,
                calib_method=args.calib_method or "minmax",
                calib_percentile=99.99 if args.calib_percentile is None
                else args.calib_percentile, exclude=exclude)


def build_parser(command: str) -> argparse.ArgumentParser:
    if command == "verify":
        p = _Parser(prog="edgecc verify", description="Compile, build with gcc, run, and "
                    "compare with onnxruntime. A quantized model passes when every layer, run "
                    "alone on onnxruntime's inputs, is within 1 LSB of onnxruntime; with "
                    "--quantize int8, when the SQNR against the float model is high enough.")
        _common(p)
        p.add_argument("--inputs", metavar="DIR_OR_NPZ",
                       help=".npz/.npy file or folder of .npy / input_N.pb (default: random)")
        p.add_argument("--per-layer", action="store_true", help="compare every layer output "
                       "(a quantized model is always checked layer by layer, each layer alone "
                       "on onnxruntime's inputs; this prints every row)")
        p.add_argument("--tol", type=float, default=1e-4,
                       help="max error relative to max|onnxruntime output| (default 1e-4)")
        p.add_argument("--sanitize", action="store_true", help="build with ASan and UBSan")
        p.add_argument("--min-sqnr", type=float, default=20.0, metavar="DB",
                       help="with --quantize: pass when every output's SQNR against the float "
                       "model is at least DB (default 20)")
        _quantize_args(p)
        _budget_args(p)
    elif command == "analyze":
        p = _Parser(prog="edgecc analyze", description="Per-layer MACs, parameters and "
                    "arena plan; totals: flash, peak arena, layer-by-layer lower bound.")
        _common(p)
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.add_argument("--plot", metavar="PNG", help="also draw live bytes per layer, layer by "
                       "layer beside patch-based, to PNG (needs pip install 'edgecc[plot]')")
        _quantize_args(p)
        _budget_args(p)
    else:
        p = _Parser(prog="edgecc", description="Compile an ONNX model to dependency-free C. "
                    "Other commands: 'edgecc verify MODEL', 'edgecc analyze MODEL'.")
        _common(p)
        p.add_argument("-o", "--output", default="edgecc_out", metavar="OUT",
                       help="output folder (default: edgecc_out)")
        p.add_argument("--emit-project", metavar="DIR", help="Cortex-M targets: also write a "
                       "CMake firmware project for the target's QEMU board to DIR")
        _quantize_args(p)
        _budget_args(p)
        p.add_argument("--version", action="version", version=f"edgecc {__version__}")
    return p


def _shapes(args):
    from ..compiler.loader import parse_input_shapes
    return parse_input_shapes(args.input_shape)


def cmd_compile(args) -> int:
    from ..analyze import analysis
    from ..compiler.driver import compile_model, write_files
    budget = _budget_kwargs(args)
    result = compile_model(args.model, args.target, _shapes(args), args.name,
                           skip_passes=args.skip_pass, kernels=args.kernels,
                           **_quantize_kwargs(args), **_bind_kwargs(args), **budget)
    write_files(result.files, args.output)
    if args.quantize not in (None, "int8"):
        _report_loss(args, budget)
    if args.emit_project:
        from ..compiler.budget import parse_size
        from ..targets.cortex_m import emit_project
        from ..verify import random_inputs
        if get_target(args.target).board is None:
            raise EdgeccError(f"--emit-project needs a --target with a board "
                              f"({', '.join(with_board())})")
        sample = random_inputs(result.graph)
        emit_project(result.files, args.emit_project, args.target, budget["sram"],
                     parse_size(args.flash, "--flash") if args.flash else None,
                     [sample[n] for n in result.graph.inputs], budget["stack"])
        print(f"edgecc: wrote a CMake firmware project for {args.target} to "
              f"{args.emit_project}/")
    t = analysis(result)["totals"]
    print(f"edgecc: wrote {', '.join(sorted(result.files))} to {args.output}/ "
          f"({t['layers']} layers, {t['macs']:,} MACs, weights {t['weights_flash_bytes']:,} B, "
          f"arena {t['arena_bytes']:,} B)")
    if result.patch is not None:
        print(f"edgecc: {result.patch.describe()}")
    return 0


def _report_loss(args, budget) -> None:
    """One line on stderr: what --quantize wNaM keeps of the float model's outputs on the
    calibration data (verify/host.py calibration_loss; skipped without gcc)."""
    import shutil
    from ..verify.host import calibration_loss
    if shutil.which("gcc") is None:
        print(f"edgecc: --quantize {args.quantize}: accuracy not measured (no gcc to run the "
              "calibration data)", file=sys.stderr)
        return
    loss = calibration_loss(args.model, _shapes(args), skip_passes=args.skip_pass,
                            **_quantize_kwargs(args), sram=None, stack=budget["stack"])
    print(f"edgecc: --quantize {args.quantize}: {loss}", file=sys.stderr)


def cmd_analyze(args) -> int:
    from ..analyze import analysis, format_table, to_json
    from ..compiler.driver import compile_model
    if args.plot:
        from ..memory_plot import require_matplotlib
        require_matplotlib()
    kwargs = dict(input_shapes=_shapes(args), prefix=args.name, skip_passes=args.skip_pass,
                  kernels=args.kernels, **_quantize_kwargs(args), **_bind_kwargs(args),
                  **_budget_kwargs(args))
    result = compile_model(args.model, args.target, **kwargs)
    info = analysis(result)
    info["patch"] = _patch_info(result.patch)
    text = to_json(info) if args.json else format_table(info)
    if not args.json and (args.patch is True or result.patch is not None):
        text += "\npatch plan: " + (result.patch.describe() if result.patch else
                                    "none (patching does not lower the arena)")
    if args.plot:
        from ..memory_plot import plot_analyze
        plot_analyze(args.plot, args.model, args.target, kwargs, result)
        text += "" if args.json else f"\nlive bytes per layer: {args.plot}"
    print(text)
    return 0


def _patch_info(p) -> Optional[dict]:
    if p is None:
        return None
    return dict(stage_nodes=[p.start, p.end], split_after=p.stage_output, grid=list(p.grid),
                arena_before=p.arena_before, arena_after=p.arena_after,
                stage_macs=p.macs_before, extra_macs=p.extra_macs,
                stages=[dict(nodes=[a, b], grid=list(g)) for a, b, g in p.stages])


def cmd_verify(args) -> int:
    from ..compiler.budget import parse_size
    from ..verify import verify_report
    text, ok = verify_report(args.model, args.target, args.inputs, args.per_layer,
                             _shapes(args), args.tol, sanitize=args.sanitize,
                             min_sqnr=args.min_sqnr, prefix=args.name,
                             skip_passes=args.skip_pass, kernels=args.kernels,
                             **_quantize_kwargs(args), **_bind_kwargs(args, args.inputs),
                             **_budget_kwargs(args),
                             flash=parse_size(args.flash, "--flash") if args.flash else None)
    print(text)
    return 0 if ok else 1


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "compile"
    if argv and argv[0] in COMMANDS:
        command = argv.pop(0)
    args = build_parser(command).parse_args(argv)
    try:
        return {"compile": cmd_compile, "verify": cmd_verify, "analyze": cmd_analyze}[command](args)
    except EdgeccError as e:
        print(f"edgecc: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # e.g. `edgecc analyze m.onnx | head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("edgecc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a compiler bug: still one line, but say so
        if os.environ.get("EDGECC_DEBUG"):
            raise
        print(f"edgecc: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
              " (this is a bug in edgecc; set EDGECC_DEBUG=1 for a traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
