"""Issue 12: the scratch each CMSIS-NN call gets is at least what Arm's library asks for, in its
DSP build (Cortex-M4/M7) and in its Helium (MVE) build (Cortex-M55), so a firmware that links
Arm's CMSIS-NN does not fail with MODEL_ERROR_KERNEL (on M55 it did: edgecc reserved the DSP
sizes, 160 B where Arm's Helium build asks 192 B on DS-CNN's first convolution, 1,168 B where it
asks 4,464 B on each depthwise 3x3, 112 B where it asks 128 B on ResNet-8's first convolution).

The rules are restated here on their own, as a table from the documented buffer-size functions
(CMSIS-NN's API documentation and arm_nnfunctions.h: ``*_get_buffer_size_dsp`` and
``*_get_buffer_size_mve``), not taken from the code under test. Each call's shapes, parameters
and reserved bytes are read from the generated C (its designated initializers and its
``cmsis_nn_context``), and the reserved bytes must also be a scratch buffer of the memory plan
at that offset.
"""
import re

import pytest

from edgecc.compiler.driver import compile_model

KB = 1024
CH_IN_BLOCK_MVE = 124  # arm_nnsupportfunctions.h


def _up(v, m):
    return -(-v // m) * m


def _conv(variant, p):
    """arm_convolve_wrapper_s8_get_buffer_size_dsp / _mve."""
    i, f, s = p["input_dims"], p["filter_dims"], p["params"]
    col = i["c"] * f["h"] * f["w"]
    if (f["h"], f["w"]) == (1, 1) and s["padding"] == (0, 0) and s["dilation"] == (1, 1):
        # arm_convolve_1x1_s8_fast (stride 1): DSP 2 * c int16 with Arm Compiler 6, else 0;
        # arm_convolve_1x1_s8 (strided): none
        return 4 * i["c"] if variant == "dsp" and s["stride"] == (1, 1) else 0
    if i["h"] == 1 and f["h"] == 1:
        pytest.fail("a 1xN convolution: this table has no rule for arm_convolve_1_x_n_s8")
    # arm_convolve_s8: DSP two int16 columns (rounded to 4), MVE four int8 columns (to 16)
    return 2 * _up(col, 4) * 2 if variant == "dsp" else 4 * _up(col, 16)


def _depthwise(variant, p):
    """arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp / _mve."""
    i, f, s = p["input_dims"], p["filter_dims"], p["params"]
    if p["ch_mult"] != 1 or i["n"] != 1 or s["dilation"] != (1, 1):
        return 0                                         # arm_depthwise_conv_s8
    if variant == "mve":                                 # arm_depthwise_conv_s8_opt
        return 4 * CH_IN_BLOCK_MVE * f["h"] * f["w"]
    if (f["h"], f["w"]) == (3, 3) and max(s["padding"]) <= 1:
        return 0                                         # arm_depthwise_conv_3x3_s8
    return i["c"] * f["h"] * f["w"] * 2                  # arm_depthwise_conv_s8_opt


RULES = {
    "arm_convolve_wrapper_s8": _conv,
    "arm_depthwise_conv_wrapper_s8": _depthwise,
    "arm_avgpool_s8": lambda v, p: 4 * p["input_dims"]["c"] if v == "dsp" else 0,
    "arm_fully_connected_s8": lambda v, p: 4 * p["output_dims"]["c"] if v == "mve" else 0,
    "arm_max_pool_s8": lambda v, p: 0,
    "arm_softmax_s8": lambda v, p: 0,
    "arm_elementwise_add_s8": lambda v, p: 0,
    "arm_elementwise_mul_s8": lambda v, p: 0,
}
_DIMS = re.compile(r"cmsis_nn_dims (\w+) = \{ \.n = (\d+), \.h = (\d+), \.w = (\d+), "
                   r"\.c = (\d+) \}")
_PAIR = re.compile(r"\.(stride|padding|dilation) = \{ \.w = (\d+), \.h = (\d+) \}")
_CTX = re.compile(r"cmsis_nn_context ctx = \{ \.buf = (?:0|\(void \*\)\(model_arena \+ "
                  r"(\d+)u\)), \.size = (\d+) \}")


def cmsis_calls(code: str):
    """(function name, API, parsed parameters) of each layer function calling CMSIS-NN."""
    found = []
    for body in code.split("EDGECC_LAYER void ")[1:]:
        call = re.search(r"EDGECC_CMSIS_CALL\((arm_\w+)\(", body)
        if not call:
            continue
        p = {m[0]: dict(zip("nhwc", map(int, m[1:]))) for m in _DIMS.findall(body)}
        p["params"] = {k: (int(h), int(w)) for k, w, h in _PAIR.findall(body)}
        mult = re.search(r"\.ch_mult = (\d+)", body)
        p["ch_mult"] = int(mult.group(1)) if mult else None
        ctx = _CTX.search(body)
        p["offset"] = int(ctx.group(1)) if ctx and ctx.group(1) else None
        p["size"] = int(ctx.group(2)) if ctx else 0
        found.append((body.split("(", 1)[0], call.group(1), p))
    return found


def reserved(result):
    """{(api, kernel h, kernel w): [reserved bytes, ...]} of a compiled model, each call's bytes
    checked against both documented rules and the memory plan."""
    planned = {b.tensors[0]: (b.offset, b.size) for b in result.plan.buffers}
    got = {}
    for fn, api, p in cmsis_calls(result.files["model.c"]):
        for variant in ("dsp", "mve"):
            need = RULES[api](variant, p)
            assert p["size"] >= need, (fn, api, variant, p)
        if p["size"]:  # the node's scratch buffer in the plan (layer functions are L<node>_...)
            offset, size = planned[f"\0scratch{fn[1:].split('_')[0]}"]
            assert offset == p["offset"] and size >= p["size"], (fn, api, p, offset, size)
        f = p.get("filter_dims", {})
        got.setdefault((api, f.get("h"), f.get("w")), []).append(p["size"])
    return got


@pytest.fixture(scope="module")
def qdq(zoo):
    return lambda name: zoo(name)["qdq"]


@pytest.mark.parametrize("target", ["cortex-m55", "cortex-m7", "cortex-m4"])
@pytest.mark.parametrize("kernels", ["cmsis-nn", "edgecc"])
@pytest.mark.parametrize("name", ["dscnn", "resnet8"])
def test_every_call_has_the_dsp_and_helium_scratch(qdq, name, kernels, target):
    result = compile_model(qdq(name), target, sram=4096 * KB if target != "cortex-m55" else None,
                           kernels=kernels)
    got = reserved(result)
    if kernels == "cmsis-nn":  # every convolution is a call
        assert ("arm_convolve_wrapper_s8", 3 if name == "resnet8" else 10,
                3 if name == "resnet8" else 4) in got


def test_the_figures_of_issue_12(qdq):
    """KWS DS-CNN and ResNet-8 with every layer on Arm's CMSIS-NN, cortex-m55: the bytes Arm's
    Helium build asks for (issue 12) are reserved."""
    kws = reserved(compile_model(qdq("dscnn"), "cortex-m55", kernels="cmsis-nn"))
    assert kws[("arm_convolve_wrapper_s8", 10, 4)] == [192]          # first conv: 1 x 10 x 4
    depthwise = kws[("arm_depthwise_conv_wrapper_s8", 3, 3)]
    assert len(depthwise) >= 1 and all(b >= 4464 for b in depthwise)
    resnet = reserved(compile_model(qdq("resnet8"), "cortex-m55", kernels="cmsis-nn"))
    first = [b for (api, h, w), sizes in resnet.items() for b in sizes
             if api == "arm_convolve_wrapper_s8" and (h, w) == (3, 3)]
    assert first and min(first) >= 128 and 128 in first              # 3 x 3 x 3: 128 B
