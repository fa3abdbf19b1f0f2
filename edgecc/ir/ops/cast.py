"""IR ops (attribute records and facts): Cast and CastLike, including float16, bfloat16 and the 8/4/2-bit float and integer types."""
from __future__ import annotations
