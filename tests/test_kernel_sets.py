"""Issue 12: a target's kernel sets (``--kernels edgecc|cmsis-nn``, ``compile_model(kernels=)``).

``edgecc`` (default) is the target record's own chain; ``cmsis-nn`` is every int8 layer CMSIS-NN
covers as a CMSIS-NN API call (chain ("cmsis", "generic")), for users who link Arm's library.
The choice is data of the target record; the compile result records it, and verify, the
firmware builds and the layer-by-layer rebuild of a patched result use it.
"""
import os
import re
import shutil

import pytest

from edgecc.cli.main import main
from edgecc.compiler.driver import compile_model, layer_by_layer
from edgecc.errors import EdgeccError
from edgecc.targets.registry import TARGETS, get_target, with_board

DIGITS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                      "digits", "digits_cnn.onnx")


def test_records():
    """Every board target offers cmsis-nn as ("cmsis", "generic"); the default is whatever the
    record's own chain is (cortex-m55's included, whichever backends it lists)."""
    for name in with_board():
        assert get_target(name).backends == TARGETS[name].backends
        assert get_target(name, "edgecc").backends == TARGETS[name].backends
        cmsis = get_target(name, "cmsis-nn")
        assert cmsis.backends == ("cmsis", "generic") and cmsis.kernels == "cmsis-nn"
        assert cmsis.board == TARGETS[name].board and cmsis.layout == TARGETS[name].layout
        assert get_target(cmsis, "edgecc").backends == TARGETS[name].backends
    with pytest.raises(EdgeccError, match="target 'generic' has no such kernel set; it has: "
                                          "edgecc"):
        get_target("generic", "cmsis-nn")


@pytest.mark.parametrize("argv, message", [
    (["--target", "generic", "--kernels", "cmsis-nn"],
     "edgecc: error: --kernels cmsis-nn: target 'generic' has no such kernel set; it has: "
     "edgecc\n"),
    (["--target", "cortex-m7", "--kernels", "arm"], "argument --kernels: invalid choice: 'arm'"),
])
@pytest.mark.parametrize("command", [[], ["analyze"], ["verify"]])
def test_cli_errors(command, argv, message, capsys, tmp_path):
    output = [] if command else ["-o", str(tmp_path)]
    with pytest.raises(SystemExit) as parsed:  # argparse's errors exit; the others return 2
        raise SystemExit(main(command + [DIGITS] + output + argv))
    assert parsed.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_cmsis_nn_kernels(zoo, tmp_path, capsys):
    """With cmsis-nn, no generated Cortex-M kernel: every convolution and depthwise convolution
    is a CMSIS-NN call; the result records the set; the layer-by-layer rebuild keeps it."""
    path = zoo("dscnn")["qdq"]
    mine = compile_model(path, "cortex-m7").files["model.c"]
    result = compile_model(path, "cortex-m7", kernels="cmsis-nn", patch=True)
    assert result.kernels == "cmsis-nn" and result.target_record().backends[0] == "cmsis"
    for r in (result, layer_by_layer(result)):
        code = r.files["model.c"]
        assert r.kernels == "cmsis-nn"
        assert "Cortex-M DSP SIMD through arm_acle.h" not in code  # backends/cortex_m/
        assert not re.search(r"depthwise convolution, \d+ channels", code)
        assert code.count("EDGECC_CMSIS_CALL(arm_depthwise_conv_wrapper_s8(") >= 4
    assert "Cortex-M DSP SIMD through arm_acle.h" in mine
    out = tmp_path / "out"
    assert main([path, "--target", "cortex-m55", "--kernels", "cmsis-nn", "-o", str(out),
                 "--emit-project", str(tmp_path / "fw")]) == 0
    code = (out / "model.c").read_text()
    assert len(re.findall(r"EDGECC_CMSIS_CALL\(arm_\w+_s8\(", code)) == 10, code
    capsys.readouterr()


@pytest.mark.skipif(any(shutil.which(t) is None for t in
                        ("arm-none-eabi-gcc", "arm-none-eabi-nm", "qemu-system-arm")),
                    reason="arm-none-eabi-gcc or qemu-system-arm not installed")
def test_verify_cmsis_nn_on_m55(zoo, capsys):
    """`edgecc verify --target cortex-m55 --kernels cmsis-nn`: the firmware (edgecc's cmsis_nn/
    in place of Arm's library) is bit-exact with the host build, every layer within 1 LSB."""
    assert main(["verify", zoo("dscnn")["qdq"], "--target", "cortex-m55",
                 "--kernels", "cmsis-nn"]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 sample bit-exact" in out and out.rstrip().endswith("verify: PASS"), out
