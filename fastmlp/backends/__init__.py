"""The registry of backends: a plain dict from name to the module and class that implement it.

Modules are imported on first use, so ``import fastmlp`` imports neither numba nor compiles
anything. ``BACKENDS`` lists the names whose dependencies are installed.
"""

from __future__ import annotations

import importlib
import importlib.util

from .base import Backend, StepStats

#: name -> (module, class, the third-party module it needs or None)
_REGISTRY = {
    "loop": ("fastmlp.backends.loop", "LoopBackend", None),
    "numpy": ("fastmlp.backends.numpy", "NumpyBackend", None),
    "numba": ("fastmlp.backends.numba", "NumbaBackend", "numba"),
}

#: fastest first: the default backend is the first available one
_SPEED_ORDER = ("numba", "numpy", "loop")


def _available(name):
    module, _, needs = _REGISTRY[name]
    if needs is not None and importlib.util.find_spec(needs) is None:
        return False
    return importlib.util.find_spec(module) is not None


#: names of the backends that can run here, in registry order
BACKENDS = tuple(name for name in _REGISTRY if _available(name))

_instances = {}


def get_backend(name):
    """Return the backend called ``name`` (an instance of :class:`Backend`).

    ``"auto"`` is the fastest available; a :class:`Backend` instance is returned as is.
    Unknown or unavailable names raise ``ValueError`` listing the available ones.
    """
    if isinstance(name, Backend):
        return name
    if name == "auto":
        name = fastest_backend()
    if not isinstance(name, str):
        raise TypeError(f"backend must be a name (one of {BACKENDS}, or 'auto'), "
                        f"got {name!r}")
    if name not in BACKENDS:
        why = " (its dependency is not installed)" if name in _REGISTRY else ""
        raise ValueError(f"unknown backend {name!r}{why}; available backends: "
                         f"{', '.join(BACKENDS)}, or 'auto' for the fastest")
    if name not in _instances:
        module, cls, _ = _REGISTRY[name]
        _instances[name] = getattr(importlib.import_module(module), cls)()
    return _instances[name]


def fastest_backend():
    """Name of the fastest backend available here."""
    return next(name for name in _SPEED_ORDER if name in BACKENDS)


__all__ = ["Backend", "StepStats", "BACKENDS", "get_backend", "fastest_backend"]
