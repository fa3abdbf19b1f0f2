"""Calibration data that used to be accepted silently (issue 11): each case through the CLI
(``edgecc MODEL --quantize int8 --calib DATA -o OUT``), checking the exit code and the one
line on stderr.

- an .npz whose keys are not the model's input names: a single-input model still takes the
  file's only array, or the one array whose shape fits, with a warning naming the key used;
  anything ambiguous (or a multi-input model) is an error naming the missing inputs and the
  unknown keys;
- NaN/Inf data is an error with the count; constant data is a warning naming the input and
  the layers whose calibrated range has zero width;
- layers that stay float though not in --quantize-exclude are named, with the reason, in a
  warning (e.g. data of magnitude 1e38: the float model overflows to inf);
- a file that is not an .npz archive / .npy array is a one-line error, not numpy's message
  about pickled data.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from onnx import helper

from edgecc.cli.main import main
from onnx_helpers import make_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits", "digits_cnn.onnx")
CALIB = os.path.join(ROOT, "examples", "digits", "calib.npz")  # key 'image', (100, 1, 8, 8)


@pytest.fixture(scope="module")
def images():
    with np.load(CALIB) as z:
        assert z.files == ["image"]
        return z["image"]


def run(capsys, model, calib, out, *extra):
    rc = main([str(model), "--quantize", "int8", "--calib", str(calib), "-o", str(out),
               *map(str, extra)])
    captured = capsys.readouterr()
    return rc, captured.err.splitlines(), captured.out


def error_line(rc, err):
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("edgecc: error: --calib "), err
    return err[0]


def warning_lines(rc, err, out):
    assert rc == 0, err
    assert "edgecc: wrote" in out
    assert all(line.startswith("edgecc: warning: ") for line in err), err
    return err


def test_matching_key_is_quiet(capsys, tmp_path):
    rc, err, out = run(capsys, DIGITS, CALIB, tmp_path / "out")
    assert rc == 0 and err == [], err


# -- 1. keys that are not the model's input names ----------------------------------------------

def test_only_array_under_another_key_warns(capsys, tmp_path, images):
    path = tmp_path / "pixels.npz"
    np.savez(path, pixels=images)
    rc, err, out = run(capsys, DIGITS, path, tmp_path / "out")
    assert warning_lines(rc, err, out) == [
        f"edgecc: warning: --calib {path}: no array named 'image' (the model's input); "
        "using 'pixels', the only array in the file"]


def test_one_fitting_array_among_others_warns(capsys, tmp_path, images):
    path = tmp_path / "images_labels.npz"
    np.savez(path, images=images, labels=np.arange(len(images)))
    rc, err, out = run(capsys, DIGITS, path, tmp_path / "out")
    assert warning_lines(rc, err, out) == [
        f"edgecc: warning: --calib {path}: no array named 'image' (the model's input); "
        "using 'images', the one array in the file whose shape fits"]


def test_several_fitting_arrays_is_an_error(capsys, tmp_path, images):
    path = tmp_path / "two.npz"
    np.savez(path, a=images, b=images[:10])
    rc, err, _ = run(capsys, DIGITS, path, tmp_path / "out")
    assert error_line(rc, err) == (
        f"edgecc: error: --calib {path}: no array named 'image' (missing model input); unknown "
        "keys: 'a', 'b' (2 of them fit its shape (1, 1, 8, 8): name the one to use 'image')")
    assert not (tmp_path / "out").exists()


def test_no_fitting_array_is_an_error(capsys, tmp_path, images):
    path = tmp_path / "none.npz"
    np.savez(path, crops=images[:, :, :4], labels=np.arange(len(images)))
    rc, err, _ = run(capsys, DIGITS, path, tmp_path / "out")
    assert error_line(rc, err) == (
        f"edgecc: error: --calib {path}: no array named 'image' (missing model input); unknown "
        "keys: 'crops', 'labels' (none fits its shape (1, 1, 8, 8))")


def _add_model(tmp_path, inputs=("a", "b")):
    model = make_model([helper.make_node("Add", list(inputs), ["y"])],
                       [(n, [1, 3]) for n in inputs], [("y", [1, 3])])
    path = tmp_path / "add.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_multi_input_names_missing_inputs_and_unknown_keys(capsys, tmp_path):
    model = _add_model(tmp_path)
    path = tmp_path / "ac.npz"
    x = np.random.default_rng(0).random((4, 1, 3)).astype(np.float32)
    np.savez(path, a=x, c=x, d=x)
    rc, err, _ = run(capsys, model, path, tmp_path / "out")
    assert error_line(rc, err) == (
        f"edgecc: error: --calib {path}: no array named 'b' (missing model input); unknown "
        "keys: 'c', 'd'; the model's inputs: 'a', 'b'")
    np.savez(path, x=x, y=x)
    rc, err, _ = run(capsys, model, path, tmp_path / "out")
    assert error_line(rc, err) == (
        f"edgecc: error: --calib {path}: no array named 'a', 'b' (missing model inputs); "
        "unknown keys: 'x', 'y'; the model's inputs: 'a', 'b'")


# -- 2. non-finite and degenerate data ---------------------------------------------------------

def test_non_finite_data_is_an_error_with_the_count(capsys, tmp_path, images):
    x = images.copy()
    x[0, 0, 0, :3] = np.nan
    x[7, 0, 5, 5] = -np.inf
    path = tmp_path / "nan.npz"
    np.savez(path, image=x)
    rc, err, _ = run(capsys, DIGITS, path, tmp_path / "out")
    assert error_line(rc, err) == (
        f"edgecc: error: --calib {path}: input 'image' holds 4 non-finite values (NaN or Inf) "
        "out of 6,400")


def test_constant_data_warns(capsys, tmp_path, images):
    path = tmp_path / "zeros.npz"
    np.savez(path, image=np.zeros_like(images))
    rc, err, out = run(capsys, DIGITS, path, tmp_path / "out")
    assert warning_lines(rc, err, out) == [
        f"edgecc: warning: --calib {path}: degenerate data: input 'image' is 0 in all 100 "
        "samples; layers with a zero-width range: none"]


def test_constant_data_names_zero_width_layers(capsys, tmp_path):
    model = _add_model(tmp_path)
    path = tmp_path / "zeros.npz"
    np.savez(path, a=np.zeros((5, 1, 3), np.float32), b=np.ones((5, 1, 3), np.float32))
    rc, err, out = run(capsys, model, path, tmp_path / "out")
    lines = warning_lines(rc, err, out)
    assert lines[0] == (
        f"edgecc: warning: --calib {path}: degenerate data: input 'a' is 0, 'b' is 1 in all 5 "
        "samples; layers with a zero-width range: y")  # the Add node, named by its output
    # the lone Add (no Conv/Gemm/MatMul) stays float, as always, and now says so
    assert lines[1:] == ["edgecc: warning: --quantize int8: 1 layer stays float: y (no "
                         "Conv/Gemm/MatMul among its int8 neighbours)"]


# -- 3. layers left float without --quantize-exclude -------------------------------------------

HUGE_FLOAT = ("/3/Conv, /6/Conv, /9/Conv, /12/GlobalAveragePool, /14/Gemm (range not finite: "
              "only inf/NaN on the calibration data)")


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_huge_data_names_the_layers_left_float(capsys, tmp_path, images, method):
    path = tmp_path / "huge.npz"
    np.savez(path, image=np.full_like(images, 1e38))
    rc, err, out = run(capsys, DIGITS, path, tmp_path / "out", "--calib-method", method)
    lines = warning_lines(rc, err, out)
    assert "weights 31,096 B" in out  # almost all float (8,344 B on good data)
    assert lines == [
        f"edgecc: warning: --calib {path}: degenerate data: input 'image' is 1e+38 in all 100 "
        "samples; layers with a zero-width range: /5/Relu",
        f"edgecc: warning: --quantize int8: 5 layers stay float: {HUGE_FLOAT}"]


def test_huge_varied_data_names_the_layer_left_float(capsys, tmp_path, images):
    path = tmp_path / "huge.npz"
    np.savez(path, image=images * np.float32(1e38))
    rc, err, out = run(capsys, DIGITS, path, tmp_path / "out")
    assert warning_lines(rc, err, out) == [
        "edgecc: warning: --quantize int8: 1 layer stays float: /14/Gemm (range not finite: "
        "only inf/NaN on the calibration data)"]


def test_excluded_layers_are_not_reported(capsys, tmp_path, images):
    path = tmp_path / "huge.npz"
    np.savez(path, image=images * np.float32(1e38))
    rc, err, out = run(capsys, DIGITS, path, tmp_path / "out", "--quantize-exclude", "/14/Gemm")
    assert rc == 0 and err == [], err


def test_op_without_int8_kernel_is_named(capsys, tmp_path):
    w = np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["h"]),
                        helper.make_node("Div", ["h", "x"], ["y"])],
                       [("x", [1, 4])], [("y", [1, 4])], {"w": w})
    path = tmp_path / "div.onnx"
    path.write_bytes(model.SerializeToString())
    calib = tmp_path / "x.npy"
    np.save(calib, np.random.default_rng(2).random((8, 1, 4)).astype(np.float32) + 0.5)
    rc, err, out = run(capsys, path, calib, tmp_path / "out")
    # the MatMul is int8; the Div (unnamed: shown by its output) has no int8 kernel
    assert warning_lines(rc, err, out) == [
        "edgecc: warning: --quantize int8: 1 layer stays float: y (no int8 kernel for Div)"]


# -- 4. files that are not what their name says ------------------------------------------------

@pytest.mark.parametrize("ext, what", [(".npz", "not a valid .npz archive"),
                                       (".npy", "not a valid .npy file")])
def test_text_file_is_not_a_valid_archive(capsys, tmp_path, ext, what):
    path = tmp_path / f"calib{ext}"
    path.write_text("0.1 0.2 0.3\n")
    rc, err, _ = run(capsys, DIGITS, path, tmp_path / "out")
    assert error_line(rc, err) == f"edgecc: error: --calib {path}: {what}"


def test_npy_or_truncated_file_named_npz_is_not_a_valid_archive(capsys, tmp_path, images):
    path = tmp_path / "array.npz"
    with open(path, "wb") as f:
        np.save(f, images)  # an .npy under an .npz name
    rc, err, _ = run(capsys, DIGITS, path, tmp_path / "out")
    assert error_line(rc, err) == f"edgecc: error: --calib {path}: not a valid .npz archive"
    with open(CALIB, "rb") as f:
        path.write_bytes(f.read(200))
    rc, err, _ = run(capsys, DIGITS, path, tmp_path / "out")
    assert error_line(rc, err) == f"edgecc: error: --calib {path}: not a valid .npz archive"
