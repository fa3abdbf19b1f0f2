"""IR ops (attribute records and facts): Normalizations and pools over groups: Instance/Group/Lp/RMS/MeanVariance normalization, LRN, LpPool."""
from __future__ import annotations
