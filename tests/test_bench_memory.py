"""Issue 5, acceptance 2 and 3: bench/memory.py on the four MLPerf Tiny models (int8, QDQ by
onnxruntime): edgecc's arena is at most the layer-by-layer lower bound, printed next to it
with the greedy-by-size arena, the ratios and the patched plan's extra MACs."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MLPERF_TINY = ("resnet8", "dscnn", "mobilenetv1_025", "autoencoder")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_memory",
                                                  os.path.join(ROOT, "bench", "memory.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mlperf_tiny_arena_at_most_lower_bound(bench, tmp_path, capsys):
    rows = [bench.measure(name, bench.quantized_model(name, str(tmp_path)))
            for name in MLPERF_TINY]
    table = bench.format_table(rows)
    with capsys.disabled():
        print("\n" + table)
    for r in rows:
        assert r["arena"] <= r["lower_bound"], r
        assert r["arena"] <= r["greedy"], r
        line = next(x for x in table.splitlines() if x.startswith(r["model"]))
        assert f"{r['lower_bound']:,}" in line and f"{r['arena']:,}" in line
        assert f"{r['greedy']:,}" in line and f"{r['arena_over_lb']:.2f}" in line
        p, m = r["patched"], r["smallest"]
        if p is not None:  # the patched plan: a smaller arena, and its halos' extra MACs shown
            assert p["arena"] < r["arena"] and f"{p['extra_macs']:,}" in line
            assert p["extra_macs"] <= bench.MAC_OVERHEAD * r["macs"]  # its column's cap
            assert m["arena"] <= p["arena"] and f"{m['arena']:,}" in line
    assert sum(r["patched"] is not None for r in rows) >= 2
