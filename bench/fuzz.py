"""Fuzz edgecc for a while: mutated reference models, compiled, built and run under sanitizers.

    python bench/fuzz.py --minutes 30 [--models digits,dscnn,qonnx] [--seed 0] [--keep DIR]

Each case takes the next seed, mutates one of the reference models (the digits CNN and, with
torch installed, DS-CNN; float and onnxruntime's int8 QDQ; with qonnx, three QONNX CNNs as
Brevitas exports them), alternating the generic,
cortex-m7 and x86-avx2 targets, and checks the promise of issue 11 (tests/fuzzlib.py has the mutations and
the outcomes): exit 2 with one line, or C that builds with -Wall -Wextra -Werror -pedantic
and runs clean under ASan + UBSan on random and extreme inputs. Prints the counts per outcome
(and per model and target), then one line per failure; the mutated models of failures are
kept in --keep (default: a temporary folder, printed) to reproduce with `edgecc MODEL`.
Exit status 1 when any case failed.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import fuzzlib  # noqa: E402

TARGETS = ("generic", "cortex-m7", "x86-avx2")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--models", default="digits,dscnn,qonnx",
                    help="reference models to mutate: digits, dscnn (needs torch), qonnx")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--keep", default="", help="folder for the models of failed cases")
    args = ap.parse_args(argv)
    keep = args.keep or tempfile.mkdtemp(prefix="edgecc_fuzz_")
    os.makedirs(keep, exist_ok=True)
    models = fuzzlib.load_reference_models(keep, args.models.split(","))
    fuzzer = fuzzlib.Fuzzer(models, keep)
    names = sorted(models)
    counts, per = collections.Counter(), collections.defaultdict(collections.Counter)
    failures = []
    deadline = time.monotonic() + 60 * args.minutes
    seed = args.seed
    while time.monotonic() < deadline:
        model = names[seed % len(names)]
        target = TARGETS[(seed // len(names)) % len(TARGETS)]
        case = fuzzer.run_case(model, target, seed)
        counts[case.outcome] += 1
        per[model, target][case.outcome] += 1
        if case.outcome in fuzzlib.BAD:
            failures.append(case)
            print(case.line(), flush=True)
        seed += 1
    total = sum(counts.values())
    print(f"\n{total} mutated models in {args.minutes:g} min (seeds {args.seed}-{seed - 1}), "
          f"cases run on {', '.join(TARGETS)}")
    outcomes = fuzzlib.GOOD + fuzzlib.BAD
    print(f"{'model':13s} {'target':9s} " + " ".join(f"{o:>9s}" for o in outcomes))
    rows = [(("all", ""), counts)] + sorted(per.items())
    for (model, target), c in rows:
        print(f"{model:13s} {target:9s} " + " ".join(f"{c[o]:9d}" for o in outcomes))
    print(f"failures: {len(failures)} (models kept in {keep})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
