"""edgecc's Helium (MVE) kernels for cortex-m55 (edgecc/backends/helium/: convolutions,
depthwise convolutions, elementwise adds) against the numpy model of the integer math
(edgecc/ir/quant_ref.py), bit for bit.

The random layers of tests/test_cortex_m_kernels.py (its case generators, other seeds), with
channel counts the Helium kernels treat specially: K = kh kw C not a multiple of 16 and over
16 (full chunks and a VCTP8 tail), M not a multiple of 4 (predicated stores), depthwise C not
a multiple of 8 (VCTP16 tail), adds not a multiple of 4 long (VCTP32 tail); strides,
dilations, padding, batches, clamps and requantization ties. Compiled once for cortex-m55;
the same C runs on the host with ASan + UBSan and at -O2/-O3 (the portable form) and under
QEMU on mps3-an547 (the MVE intrinsics); both must equal the model. Every case must be taken
by the Helium kernel (not cortex_m's DSP kernels nor the CMSIS-NN calls); so must every
convolution and add of DS-CNN and ResNet-8.
"""
import re

import numpy as np
import pytest
from int8_testlib import SEED, layers_of
from test_cortex_m_kernels import HAVE_ARM, add_cases, compare, compile_for, conv_cases

from edgecc.backends.helium import add, conv, depthwise
from edgecc.compiler.driver import compile_model
from edgecc.runner import build_host, run_host
from edgecc.targets.cortex_m import build_firmware, run_qemu

KINDS = ("conv", "depthwise", "add")
MARKERS = {"conv": "VMLADAVA.S8 over 16-byte chunks", "depthwise": "channels per step as int16 lanes",
           "add": "(Helium): TFLite's Add"}
OTHER_KERNELS = ("patches sign-extended into the", "depthwise convolution,",
                 "TFLite's Add with every multiplier", "arm_depthwise_conv_wrapper_s8(",
                 "arm_convolve_wrapper_s8(", "arm_elementwise_add_s8(")


@pytest.fixture(scope="module", params=KINDS)
def program(request):
    kind = request.param
    rng = np.random.default_rng(SEED + 55 + KINDS.index(kind))
    if kind == "add":
        p = add_cases(rng, 24, "hm", high=9)
    else:
        p = conv_cases(rng, 30, kind == "depthwise", channels=(1, 3, 5, 13, 16, 17, 33, 40, 64),
                       dw_channels=(3, 5, 8, 12, 16, 21, 36, 64), name="hm")
    files, graph = compile_for(p, "cortex-m55")
    return kind, p, files, graph


def test_cases_are_taken_by_the_helium_kernels(program):
    """Every case inside the kernels' exactness conditions (cortex_m/conv.py's
    ``requantization``: right shifts 1..22, |acc| < 2^30) runs the Helium kernel; the seeds
    give one convolution outside them (a left shift: output scale above input x weight
    scale), which is the CMSIS-NN call's, as on cortex-m7."""
    kind, p, files, graph = program
    module = {"conv": conv, "depthwise": depthwise, "add": add}[kind]
    nodes = [n for n in graph.nodes if n.op in ("QConvNHWC", "QAdd")]
    outside = [label for n, label in zip(nodes, p.labels) if module.plan(graph, n) is None]
    assert len(nodes) == len(p.labels) and len(outside) <= 1, outside
    assert files["model.c"].count(MARKERS[kind]) == len(p.labels) - len(outside)
    calls = files["model.c"].count("arm_convolve_wrapper_s8(")
    assert calls == len(outside)
    for other in OTHER_KERNELS:
        assert other not in files["model.c"] or other == "arm_convolve_wrapper_s8("


@pytest.mark.parametrize("opt", ["-O1", "-O2", "-O3"])
def test_on_the_host_equals_the_numpy_model(program, opt, tmp_path):
    """The portable form: sanitized at -O1, and at -O2 and -O3 as users build it."""
    _, p, files, graph = program
    build = build_host(files, graph, "model", str(tmp_path), sanitize=opt == "-O1", opt=opt)
    assert not compare(run_host(build, p.feeds), p)


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("defines", [(), ("EDGECC_NO_INLINE_ASM",)])
def test_on_cortex_m55_equals_the_numpy_model(program, defines, tmp_path):
    """With GCC's inline assembly (the convolutions' inner loops) and with the intrinsics other
    compilers build."""
    kind, p, files, graph = program
    if defines and kind == "add":
        pytest.skip("the add has no inline assembly")
    fw = build_firmware(files, str(tmp_path / "fw"), "cortex-m55",
                        input_arrays=[np.asarray(f) for f in p.feeds], defines=list(defines))
    run = run_qemu(fw.elf, "cortex-m55", timeout=300)
    assert len(run.outputs) == len(p.expected)
    assert not compare(run.outputs, p)


@pytest.mark.parametrize("name, convs, depthwise, adds", [("dscnn", 5, 4, 0),
                                                          ("resnet8", 9, 0, 3)])
def test_models_run_the_helium_kernels(zoo, name, convs, depthwise, adds):
    """DS-CNN's and ResNet-8's convolutions, depthwise convolutions and adds on cortex-m55
    are all Helium kernels; the classifier (a QGemm) runs the next backend's generated fully
    connected kernel (cortex_m/fc.py, the DSP matrix product); no CMSIS-NN call is left."""
    code = compile_model(zoo(name)["qdq"], "cortex-m55").files["model.c"]
    assert [layers_of(code, MARKERS[k]) for k in KINDS] == [convs, depthwise, adds]
    assert re.findall(r"(arm_\w+_s8)\(", code) == []
    assert layers_of(code, OTHER_KERNELS[0]) == 1
    for other in OTHER_KERNELS[1:3]:
        assert other not in code
