"""Expected failures of the ONNX backend node tests, one reason each.

docs/ops.md is generated from this file and the registry (python tests/gen_ops_doc.py).
An entry that starts passing fails the suite (strict xfail): delete it then.
"""

# Ops edgecc does not compile on purpose, with the reason; a node test that uses one is an
# expected failure with that reason.
_STRINGS = "string tensors have no representation in the generated C (text belongs on the host)"
_SEQUENCES = "sequence and optional values are not supported (tensors only)"
OUT_OF_SCOPE = {
    **dict.fromkeys("StringSplit StringNormalizer StringConcat RegexFullMatch TfIdfVectorizer "
                    "LabelEncoder".split(), _STRINGS),
    **dict.fromkeys("SequenceMap SequenceEmpty SequenceLength SequenceInsert SequenceAt "
                    "SequenceConstruct SequenceErase ConcatFromSequence SplitToSequence "
                    "OptionalHasElement OptionalGetElement Optional".split(), _SEQUENCES),
    **dict.fromkeys("Adagrad Adam Momentum Gradient".split(),
                    "a training optimizer (ai.onnx.preview.training): edgecc compiles inference"),
    **dict.fromkeys("Bernoulli RandomUniformLike RandomNormalLike RandomUniform "
                    "RandomNormal Multinomial".split(),
                    "draws random numbers: no output a reference can check"),
    "ImageDecoder": "decodes JPEG/PNG/... bytes: a codec, not a tensor op",
    **dict.fromkeys("NonZero Unique NonMaxSuppression".split(),
                    "the output's shape depends on the input values (static shapes only)"),
}


def ledger_reason(name: str, ops) -> str:
    """Why node test ``name`` (using ``ops``) is expected to fail, or "" if it must pass."""
    if name in LEDGER:
        return LEDGER[name]
    return next((OUT_OF_SCOPE[op] for op in sorted(ops) if op in OUT_OF_SCOPE), "")


_ONE_ROUNDING = ("the reference rounds every intermediate to bfloat16/float16; edgecc computes "
                 "narrow floats in float32 and rounds once, at the output (1 ulp > rtol 1e-3)")

LEDGER = {
    "test_attention_4d_causal_bf16": _ONE_ROUNDING,
    "test_attention_4d_causal_bf16_expanded": _ONE_ROUNDING,
    "test_attention_3d_causal_bf16": _ONE_ROUNDING,
    "test_attention_3d_causal_bf16_expanded": _ONE_ROUNDING,
    "test_attention_4d_attn_mask_causal_bf16": _ONE_ROUNDING,
    "test_attention_4d_attn_mask_causal_bf16_expanded": _ONE_ROUNDING,
    "test_attention_4d_padded_kv_bf16": _ONE_ROUNDING,
    "test_attention_4d_padded_kv_bf16_expanded": _ONE_ROUNDING,
    "test_attention_4d_causal_padded_kv_bf16": _ONE_ROUNDING,
    "test_attention_4d_causal_padded_kv_bf16_expanded": _ONE_ROUNDING,
    "test_attention_4d_causal_fp16_expanded": _ONE_ROUNDING,
    "test_equal_string": _STRINGS,
    "test_equal_string_broadcast": _STRINGS,
    "test_if_seq": "sequence-typed inputs/outputs are not supported (tensors only)",
    "test_if_opt": "optional-typed inputs/outputs are not supported (tensors only)",
    "test_loop13_seq": "sequence-typed inputs/outputs are not supported (tensors only)",
    "test_loop16_seq_none": "sequence-typed inputs/outputs are not supported (tensors only)",
    "test_scan_sum": "Scan opset 8 (batch axis, sequence_lens) is not supported; opset 9+ Scan is unrolled",
    "test_identity_opt": "optional-typed inputs/outputs are not supported (tensors only)",
    "test_identity_sequence": "sequence-typed inputs/outputs are not supported (tensors only)",
    "test_training_dropout": "training-mode Dropout with ratio > 0 draws random numbers (inference only)",
    "test_training_dropout_default": "training-mode Dropout with ratio > 0 draws random numbers (inference only)",
    "test_training_dropout_default_mask": "training-mode Dropout with ratio > 0 draws random numbers (inference only)",
    "test_training_dropout_mask": "training-mode Dropout with ratio > 0 draws random numbers (inference only)",
    "test_dequantizelinear_blocked": "blocked quantization (block_size > 0) is not supported",
    "test_quantizelinear_blocked_asymmetric": "blocked quantization (block_size > 0) is not supported",
    "test_quantizelinear_blocked_symmetric": "blocked quantization (block_size > 0) is not supported",
}
