"""Expected failures of the ONNX backend node tests, one reason each.

docs/ops.md is generated from this file and the registry (python -m tests.gen_ops_doc).
An entry that starts passing fails the suite (strict xfail): delete it then.
"""

# The ops issue #2 requires; node tests using only these ops must pass or be listed below.
REQUIRED_OPS = frozenset("""
Conv ConvTranspose Gemm MatMul Add Sub Mul Div Relu LeakyRelu PRelu Clip Sigmoid HardSigmoid
HardSwish Tanh Softmax LogSoftmax MaxPool AveragePool GlobalAveragePool GlobalMaxPool
BatchNormalization Reshape Flatten Transpose Concat Split Slice Squeeze Unsqueeze Pad ReduceMean
ReduceMax ReduceSum Resize Identity Dropout Constant Shape Gather Sqrt Exp Log Pow Neg Abs Min
Max Sum Mean Erf Gelu LayerNormalization Cast
""".split())

_LOWBIT = "float16/bfloat16/float8/4-bit/2-bit element types are not supported by the C backend"

LEDGER = {
}
