import os

from gen_ops_doc import render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ops_doc_is_current():
    with open(os.path.join(ROOT, "docs", "ops.md")) as f:
        assert f.read() == render(), "run: python tests/gen_ops_doc.py > docs/ops.md"
