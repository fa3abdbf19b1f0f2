"""IR ops (attribute records and facts): Classical ML ops of the ai.onnx.ml domain: Binarizer, ArrayFeatureExtractor, TreeEnsemble, LabelEncoder."""
from __future__ import annotations
