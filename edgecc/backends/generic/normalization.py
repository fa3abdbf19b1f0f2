"""Portable C kernels: Normalizations and pools over groups: Instance/Group/Lp/RMS/MeanVariance normalization, LRN, LpPool."""
from __future__ import annotations
