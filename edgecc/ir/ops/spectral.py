"""IR ops (attribute records and facts): Signal processing for audio front ends: DFT, STFT, MelWeightMatrix and the window functions."""
from __future__ import annotations
