"""The backends by name. Registration is explicit: BUILTIN names each backend's package (imported
when first asked for, so naming targets costs no import); ``register`` adds one at run time
(a test's toy backend). Registering a name twice is an error."""
from __future__ import annotations

import importlib
from typing import Dict

from .kernels import Backend

BUILTIN = {"generic": "edgecc.backends.generic", "cmsis": "edgecc.backends.cmsis",
           "cortex_m": "edgecc.backends.cortex_m", "helium": "edgecc.backends.helium",
           "x86": "edgecc.backends.x86", "neon": "edgecc.backends.neon"}
_LOADED: Dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    if backend.name in _LOADED or backend.name in BUILTIN:
        raise ValueError(f"backend '{backend.name}' is already registered")
    _LOADED[backend.name] = backend
    return backend


def get_backend(name: str) -> Backend:
    if name not in _LOADED:
        if name not in BUILTIN:
            raise KeyError(f"unknown backend '{name}'; known: {', '.join(names())}")
        _LOADED[name] = importlib.import_module(BUILTIN[name]).BACKEND
    return _LOADED[name]


def names():
    return sorted(set(BUILTIN) | set(_LOADED))
