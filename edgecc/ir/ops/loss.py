"""IR ops (attribute records and facts): Losses: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss."""
from __future__ import annotations
