"""IR ops (attribute records and facts): Index ops: ArgMax/ArgMin, TopK, Hardmax, GatherElements/GatherND, Scatter*."""
from __future__ import annotations
