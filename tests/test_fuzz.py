"""The fuzzer's short run (issue 11): mutated digits CNNs, float and int8 (onnxruntime QDQ), and
QONNX CNNs (Brevitas' format: integer, FLOOR-rounded and binary quantizers), on
generic, cortex-m7 and x86-avx2 (the cortex-m7 C, CMSIS-NN-compatible sources included, built
for the host; the x86-avx2 C with -mavx2 -mfma). Every case must end "rejected" (exit 2, one line) or "clean" (the C builds with
-Wall -Wextra -Werror -pedantic and runs clean under ASan + UBSan on random and extreme
inputs). The long run is `python bench/fuzz.py --minutes 30`; tests/fuzzlib.py has the
mutations. Seeds are fixed: a failure here reproduces with bench/fuzz.py --seed SEED."""
import collections

import numpy as np
import pytest

import fuzzlib

CHUNKS, PER_CHUNK = 8, 40  # 320 mutated models
MODELS = ("digits_float", "digits_int8")
TARGETS = ("generic", "cortex-m7", "x86-avx2")


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    return fuzzlib.Fuzzer(fuzzlib.load_reference_models(str(root), ("digits", "qonnx")),
                          str(root))


def run_chunk(fuzzer, models, seeds):
    """Run the seeds' cases (models and targets in turn); assert none failed and that at least
    5 reached codegen and ran (clean), not only the parser."""
    counts, bad = collections.Counter(), []
    for seed in seeds:
        model = models[seed % len(models)]
        case = fuzzer.run_case(model, TARGETS[(seed // len(models)) % len(TARGETS)], seed)
        counts[case.outcome, case.model, case.target] += 1
        if case.outcome in fuzzlib.BAD:
            bad.append(case.line())
    print(dict(counts))
    assert not bad, "\n".join(bad)
    assert sum(counts.values()) == len(seeds)
    assert sum(n for (outcome, _, _), n in counts.items() if outcome == "clean") >= 5


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_mutated_models_are_rejected_or_safe(fuzzer, chunk):
    run_chunk(fuzzer, MODELS, range(chunk * PER_CHUNK, (chunk + 1) * PER_CHUNK))


QONNX_MODELS = ("qonnx_w4a4", "qonnx_floor", "qonnx_w1a1")


@pytest.mark.parametrize("chunk", range(2))
def test_mutated_qonnx_models_are_rejected_or_safe(fuzzer, chunk):
    """The same oracle on QONNX graphs (Quant, BipolarQuant: the integer form and FakeQuant)."""
    first = 10000 + chunk * PER_CHUNK
    run_chunk(fuzzer, QONNX_MODELS, range(first, first + PER_CHUNK))


def test_the_oracle_sees_out_of_bounds_reads_and_warnings(fuzzer, tmp_path):
    """The harness itself: C that reads past an array is a sanitizer report, C with a warning
    is a build failure, and the reference C is clean on extreme inputs."""
    from edgecc.compiler.driver import compile_model
    result = compile_model(fuzzer.models["digits_float"], "generic")
    files, g = dict(result.files), result.graph
    outcome, detail = fuzzlib.build_and_run(files, result.prefix, g, "generic",
                                            str(tmp_path / "ok"), 0)
    assert outcome == "clean", detail
    text = files["model.c"]
    head, sig, rest = text.partition("model_status_t model_run(")
    params, brace, body = rest.partition("{")
    assert sig and brace
    bad = dict(files, **{"model.c": (
        head + "static volatile int edgecc_k = 2;\nstatic const int edgecc_a[2] = {1, 2};\n"
        + sig + params + brace + "\n    if (edgecc_a[edgecc_k] == 7) return MODEL_OK;" + body)})
    outcome, detail = fuzzlib.build_and_run(bad, result.prefix, g, "generic",
                                            str(tmp_path / "oob"), 0)
    assert outcome == "sanitizer" and ("out of bounds" in detail
                                       or "global-buffer-overflow" in detail), detail
    warn = dict(files)
    warn["model.c"] = text + "\nstatic int edgecc_unused;\n"
    outcome, detail = fuzzlib.build_and_run(warn, result.prefix, g, "generic",
                                            str(tmp_path / "warn"), 0)
    assert outcome == "build", detail


def test_extreme_inputs_hold_nan_inf_huge_and_denormals(fuzzer):
    from edgecc.compiler.driver import compile_model
    g = compile_model(fuzzer.models["digits_float"], "generic").graph
    random, extreme, huge = fuzzlib.extreme_inputs(g, 0)
    x = extreme[0]
    assert np.isnan(x).any() and np.isposinf(x).any() and np.isneginf(x).any()
    assert (np.abs(x) == np.float32(1e30)).any() and ((x != 0) & (np.abs(x) < 1e-38)).any()
    assert np.all(np.abs(huge[0]) == np.float32(1e30)) and np.isfinite(random[0]).all()
