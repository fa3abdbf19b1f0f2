"""edgecc: an ahead-of-time compiler from ONNX to dependency-free embedded C."""

__version__ = "0.1.0"
