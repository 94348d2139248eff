"""Hidden-layer activations: each function and its derivative, defined once.

Every derivative is written from the layer's *output* ``h = f(a)``, as in the spec's table,
so that backward passes need no cached pre-activation::

    name        f(a)                               f'(a), from h
    relu        max(0, a)                          1[h > 0]   (0 at a = 0)
    tanh        tanh(a)                            1 - h²
    logistic    e^min(a,0) / (1 + e^-|a|)          h (1 - h)
    identity    a                                  1

The logistic is computed in that form so that no exponential overflows (for |a| ~ 1e4 the
textbook ``1 / (1 + e^-a)`` overflows and warns); ``tanh`` never overflows. Results stay in
the input's dtype.

The loop and numpy backends call these functions; the numba kernels take the activation as
an integer code (:data:`CODES`) and branch on it, and the tests pin them to these.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


def relu(a):
    return np.maximum(a, a.dtype.type(0))


def relu_derivative(h):
    return (h > 0).astype(h.dtype)


def tanh(a):
    return np.tanh(a)


def tanh_derivative(h):
    return h.dtype.type(1) - h * h


def logistic(a):
    one = a.dtype.type(1)
    e = np.exp(-np.abs(a))                       # e^-|a| <= 1: never overflows
    return np.where(a >= 0, one, e) / (one + e)  # e^min(a,0) / (1 + e^-|a|)


def logistic_derivative(h):
    return h * (h.dtype.type(1) - h)


def identity(a):
    return a.copy()


def identity_derivative(h):
    return np.ones_like(h)


class Activation(NamedTuple):
    """One activation: its integer code (for the numba kernels), f and f' written from h."""

    code: int
    function: Callable
    derivative: Callable


#: name -> Activation; the codes are fixed (they are compiled into the numba kernels)
ACTIVATIONS = {
    "relu": Activation(0, relu, relu_derivative),
    "tanh": Activation(1, tanh, tanh_derivative),
    "logistic": Activation(2, logistic, logistic_derivative),
    "identity": Activation(3, identity, identity_derivative),
}

#: name -> code, and the names in code order
CODES = {name: act.code for name, act in ACTIVATIONS.items()}
NAMES = tuple(ACTIVATIONS)


__all__ = ["ACTIVATIONS", "CODES", "NAMES", "Activation", "relu", "relu_derivative", "tanh",
           "tanh_derivative", "logistic", "logistic_derivative", "identity",
           "identity_derivative"]
