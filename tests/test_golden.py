"""Golden output: the generated C sources, byte for byte.

For the five reference architectures (tests/model_zoo.py) and the bundled digits CNN, float,
int8 by edgecc's PTQ (``--quantize int8``) and int8 by onnxruntime's quantizer (QDQ), on
``generic`` and ``cortex-m7``, the SHA-256 of every generated file must equal the one recorded
in tests/golden/<case>.json. A refactor shows zero diff; a change that means to alter the
generated code re-records the hashes and says so in its commit:

    EDGECC_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

The input models are rebuilt in the run (torch export with fixed seeds, onnxruntime's
quantize_static), so the versions pinned in scripts/constraints-test.txt are part of the key.
"""
import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from edgecc.compiler.driver import compile_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
DIGITS = os.path.join(ROOT, "examples", "digits")
MODELS = ["resnet8", "dscnn", "mobilenetv1_025", "autoencoder", "mobilenetv2_035", "digits"]
CASES = [(m, mode, t) for m in MODELS for mode in ("float", "ptq", "qdq")
         for t in ("generic", "cortex-m7")]


@pytest.fixture(scope="module")
def digits_qdq(tmp_path_factory):
    from onnx_helpers import quantize_ort
    calib = np.load(os.path.join(DIGITS, "calib.npz"))
    x = calib[calib.files[0]].astype(np.float32)
    root = tmp_path_factory.mktemp("golden")  # the quantizer writes files next to its input
    shutil.copy(os.path.join(DIGITS, "digits_cnn.onnx"), root / "digits_cnn.onnx")
    return quantize_ort(str(root / "digits_cnn.onnx"), str(root / "digits_qdq.onnx"), "image",
                        x.reshape((-1,) + x.shape[-3:]))


def source_hashes(files):
    return {name: hashlib.sha256(text.encode()).hexdigest() for name, text in sorted(files.items())}


@pytest.mark.parametrize("name,mode,target", CASES, ids=["-".join(c) for c in CASES])
def test_generated_sources_unchanged(zoo, digits_qdq, name, mode, target):
    if name == "digits":
        paths = dict(float=os.path.join(DIGITS, "digits_cnn.onnx"), qdq=digits_qdq,
                     calib=os.path.join(DIGITS, "calib.npz"))
    else:
        paths = zoo(name)
    options = dict(quantize="int8", calib=paths["calib"]) if mode == "ptq" else {}
    if target != "generic":  # float MobileNetV2 needs 1.2 MB; nothing here is patched
        options["sram"] = 4 << 20
    result = compile_model(paths["qdq" if mode == "qdq" else "float"], target, **options)
    got = source_hashes(result.files)
    path = os.path.join(GOLDEN, f"{name}-{mode}-{target}.json")
    if os.environ.get("EDGECC_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            json.dump(got, f, indent=1, sort_keys=True)
            f.write("\n")
    with open(path) as f:
        want = json.load(f)
    changed = sorted(n for n in set(got) | set(want) if got.get(n) != want.get(n))
    assert not changed, (f"generated sources differ from tests/golden ({changed}); if "
                         "intended, rerun with EDGECC_UPDATE_GOLDEN=1 and say why in the commit")
