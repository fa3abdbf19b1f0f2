"""The CLI on the bundled digits example: compile, analyze (table and JSON), verify."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from edgecc.cli.main import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits", "digits_cnn.onnx")
HELDOUT = os.path.join(ROOT, "examples", "digits", "heldout.npz")


def edgecc(*args):
    return subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)],
                          capture_output=True, text=True)


def test_compile_writes_sources_identically(tmp_path):
    for out in ("a", "b"):
        proc = edgecc(DIGITS, "--name", "digits", "-o", tmp_path / out)
        assert proc.returncode == 0, proc.stderr
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == ["digits.c", "digits.h", "digits_weights.c", "digits_weights.h"]
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes()
    code = (tmp_path / "a" / "digits.c").read_text()
    for banned in ("malloc", "printf", "stdio.h", "free("):
        assert banned not in code


def test_analyze_table_and_json():
    table = edgecc("analyze", DIGITS)
    assert table.returncode == 0, table.stderr
    assert "layer-by-layer lower bound" in table.stdout and "Conv+Relu" in table.stdout
    proc = edgecc("analyze", DIGITS, "--json")
    info = json.loads(proc.stdout)
    t = info["totals"]
    assert t["macs"] == sum(layer["macs"] for layer in info["layers"]) == 120_960
    assert t["lower_bound_bytes"] <= t["arena_bytes"]
    assert t["weights_flash_bytes"] == 4 * t["params"]
    assert str(t["arena_bytes"]) in table.stdout.replace(",", "")


def test_verify_per_layer_passes_on_heldout_images():
    proc = edgecc("verify", DIGITS, "--inputs", HELDOUT, "--per-layer")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "over 16 samples" in proc.stdout and "verify: PASS" in proc.stdout
    assert "/12/GlobalAveragePool_output_0" in proc.stdout  # a per-layer row


def test_verify_reports_mismatch_with_exit_1(monkeypatch, capsys):
    import edgecc.verify.host as v
    real = v.run_host

    def perturbed(*args, **kwargs):
        return [o + np.float32(1.0) for o in real(*args, **kwargs)]

    monkeypatch.setattr(v, "run_host", perturbed)
    assert main(["verify", DIGITS]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "verify: FAIL" in out


def test_verify_rejects_wrong_inputs(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 5), np.float32))
    proc = edgecc("verify", DIGITS, "--inputs", bad)
    assert proc.returncode == 2 and "expects (1, 1, 8, 8)" in proc.stderr
