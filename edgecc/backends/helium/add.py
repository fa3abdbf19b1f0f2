"""int8 elementwise add on Helium (MVE), generated per layer: the layers cortex_m/add.py takes
(its ``plan``: same-shape int8 inputs, right shifts only, and its ``emit`` with this backend's
template), four elements per step as int32 lanes (VLDRB.S32), the last ones under a VCTP32
predicate. TFLite's Add as the numpy model computes it: each input's (x - z) 2^20 through
SRDHM (VQRDMULH by the constant multiplier, exact) and RDBP (x - [x < 0], then VRSHR: round
half away from zero), their sum through the output's, plus its zero point, clamped; the
portable form does the same per element."""
from __future__ import annotations

import functools

from ..cortex_m import add

plan = add.plan
emit = functools.partial(add.emit, template="hm_add.c.j2", needs=("hm_mve.c.j2",))
