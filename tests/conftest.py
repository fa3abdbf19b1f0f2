import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


def pytest_terminal_summary(terminalreporter):
    """Print the ONNX node-test pass count over the whole suite."""
    stats = terminalreporter.stats
    node = lambda key: [r for r in stats.get(key, []) if "test_onnx_node.py::test_node" in r.nodeid]  # noqa: E731
    passed, failed = len(node("passed")), len(node("failed"))
    skipped, xfailed = len(node("skipped")), len(node("xfailed"))
    total = passed + failed + skipped + xfailed + len(node("xpassed"))
    if total:
        terminalreporter.write_line(
            f"ONNX node tests: {passed} of {total} pass ({failed} fail, {xfailed} expected "
            f"failures in the ledger, {skipped} use ops outside the required set)")
