"""Optimizers: how a minibatch gradient becomes a step, with the state the rule carries.

Each optimizer is a small object holding its hyper-parameters; its state (velocity, moments,
the step count) lives in an :class:`OptimizerState` of flat buffers shaped like the model's
parameter buffer (see :mod:`fastmlp.layout`), so that one update covers every layer and a
checkpoint saves the state as a few arrays. The updates are PyTorch's (``torch.optim.SGD``
with ``momentum``/``nesterov`` and ``torch.optim.Adam``, no weight decay: the elastic-net
terms are already in the gradient). With ``g`` the gradient of the minibatch objective J
(penalties included) and ``t`` the step number over the whole run, counted from 1::

    sgd       p <- p - lr g
    momentum  b <- mu b + g   (b = g on the first step: b starts at 0)      p <- p - lr b
    nesterov  b as momentum;                                               p <- p - lr (g + mu b)
    adam      m <- beta1 m + (1 - beta1) g;   v <- beta2 v + (1 - beta2) g²
              p <- p - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

scikit-learn's Adam puts eps elsewhere (``lr sqrt(1-beta2^t)/(1-beta1^t) m / (sqrt(v) + eps)``),
and its SGD momentum keeps the learning rate inside the velocity; fastmlp follows PyTorch.

One departure from PyTorch: a state value (``b``, ``m`` or ``v``) whose magnitude falls below
the dtype's smallest normal number (1.2e-38 in float32) is stored as zero
(:func:`flush_subnormals`). Where the gradient is exactly zero -- the weights of a dead ReLU
unit, with no penalty -- the state decays geometrically into the subnormal range, and x86
CPUs take a microcode assist of about a hundred cycles for every operation on a subnormal:
Adam on (784, 256, 128, 10) without penalties, K=32, took 2.98 s per epoch in the numba
backend without this rule and 0.995 s with it (SGD: 0.73 s; 2-core Xeon). The values flushed
are below anything an update can move a weight by.

:meth:`Optimizer.step` is the NumPy definition of each rule, used by the ``loop`` and
``numpy`` backends; the numba kernels restate it per row of a weight matrix (they take the
rule as :attr:`Optimizer.code` and :meth:`Optimizer.hyper`), pinned to it by the tests.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _aligned
from ._validation import check_named


def flush_subnormals(a):
    """Set the subnormal values of the float array ``a`` to zero, in place (see the module
    text); NaN and infinities stay."""
    a[np.abs(a) < np.finfo(a.dtype).tiny] = 0      # 5x faster than np.putmask here


class Optimizer:
    """An update rule and its hyper-parameters (the base class; see the subclasses)."""

    #: registry name, and the integer code the numba kernels branch on
    name = ""
    code = -1
    #: names of the flat state buffers the rule keeps (each shaped like the parameters)
    buffers = ()
    #: hyper-parameter names, in the order of :meth:`hyper`
    fields = ()

    def hyper(self):
        """``(momentum, beta1, beta2, eps)`` as a float64 array, zeros where unused: the
        kernels' fixed signature for every rule."""
        values = {"momentum": 0.0, "beta1": 0.0, "beta2": 0.0, "eps": 0.0}
        values.update({f: getattr(self, f) for f in self.fields})
        return np.array([values["momentum"], values["beta1"], values["beta2"], values["eps"]])

    def init_state(self, n_params, dtype):
        """A fresh :class:`OptimizerState`: zero buffers, no step taken."""
        return OptimizerState(self, 0, {name: _aligned.zeros(n_params, dtype)
                                        for name in self.buffers})

    def step(self, theta, grad, state, lr):
        """One update of the flat parameter buffer ``theta`` in place, from ``grad`` (the
        objective's gradient, penalties included), advancing ``state``; all in theta's dtype."""
        raise NotImplementedError

    def to_dict(self):
        return {"name": self.name, **{f: getattr(self, f) for f in self.fields}}

    def __eq__(self, other):
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __hash__(self):
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self):
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.fields)
        return f"{type(self).__name__}({args})"


def _check_unit_interval(value, name):
    """A real number in [0, 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1), got {value!r}")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def _check_positive(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number > 0, got {value!r}")
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _check_momentum(value, name="momentum"):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0, got {value!r}")
    value = float(value)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


class SGD(Optimizer):
    """Plain minibatch SGD: ``p <- p - lr g`` (no state)."""

    name, code = "sgd", 0

    def step(self, theta, grad, state, lr):
        state.step += 1
        theta -= theta.dtype.type(lr) * grad


class Momentum(Optimizer):
    """SGD with (heavy-ball) momentum, as ``torch.optim.SGD(momentum=mu)``:
    ``b <- mu b + g``, ``p <- p - lr b``."""

    name, code = "momentum", 1
    buffers = ("velocity",)
    fields = ("momentum",)

    def __init__(self, momentum=0.9):
        self.momentum = _check_momentum(momentum)

    def step(self, theta, grad, state, lr):
        t = theta.dtype.type
        b = state.buffers["velocity"]
        state.step += 1
        b *= t(self.momentum)
        b += grad
        flush_subnormals(b)
        theta -= t(lr) * self._direction(grad, b)

    def _direction(self, grad, b):
        return b


class Nesterov(Momentum):
    """Nesterov momentum, as ``torch.optim.SGD(momentum=mu, nesterov=True)``:
    ``b <- mu b + g``, ``p <- p - lr (g + mu b)``."""

    name, code = "nesterov", 2

    def _direction(self, grad, b):
        return grad + b.dtype.type(self.momentum) * b


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam(betas=(beta1, beta2), eps=eps)`` (see the module text)."""

    name, code = "adam", 3
    buffers = ("exp_avg", "exp_avg_sq")
    fields = ("beta1", "beta2", "eps")

    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-8):
        self.beta1 = _check_unit_interval(beta1, "beta1")
        self.beta2 = _check_unit_interval(beta2, "beta2")
        self.eps = _check_positive(eps, "eps")

    def step(self, theta, grad, state, lr):
        t = theta.dtype.type
        m, v = state.buffers["exp_avg"], state.buffers["exp_avg_sq"]
        state.step += 1
        step_size, bc2_sqrt = adam_scalars(lr, self.beta1, self.beta2, state.step)
        m *= t(self.beta1)
        m += t(1.0 - self.beta1) * grad
        v *= t(self.beta2)
        v += t(1.0 - self.beta2) * (grad * grad)
        flush_subnormals(m)
        flush_subnormals(v)
        theta -= t(step_size) * (m / (np.sqrt(v) / t(bc2_sqrt) + t(self.eps)))


def adam_scalars(lr, beta1, beta2, step):
    """Adam's per-step scalars, in float64 as PyTorch computes them:
    ``(lr / (1 - beta1^t), sqrt(1 - beta2^t))``."""
    return lr / (1.0 - beta1 ** step), math.sqrt(1.0 - beta2 ** step)


#: name -> class
OPTIMIZERS = {cls.name: cls for cls in (SGD, Momentum, Nesterov, Adam)}


def get_optimizer(optimizer, name="optimizer"):
    """An :class:`Optimizer` from a name of :data:`OPTIMIZERS` (default hyper-parameters) or
    an instance (returned as is)."""
    return check_named(optimizer, name, OPTIMIZERS, Optimizer, "an optimizer", "fastmlp.optim")


def optimizer_from_dict(d):
    """The inverse of :meth:`Optimizer.to_dict` (raises ValueError/TypeError when invalid)."""
    if not isinstance(d, dict) or d.get("name") not in OPTIMIZERS:
        raise ValueError(f"not an optimizer description: {d!r:.100}")
    cls = OPTIMIZERS[d["name"]]
    unknown = set(d) - {"name", *cls.fields}
    if unknown:
        raise ValueError(f"optimizer {d['name']!r}: unknown settings {sorted(unknown)}")
    return cls(**{k: val for k, val in d.items() if k != "name"})


class OptimizerState:
    """What an optimizer carries from step to step: ``step`` (steps taken in the whole run)
    and its flat ``buffers`` (each shaped like the model's parameter buffer).

    It belongs to the run: checkpoints save it, a divergence restores it with the weights.
    """

    def __init__(self, optimizer, step, buffers):
        self.optimizer = optimizer
        self.step = int(step)
        self.buffers = dict(buffers)

    def copy(self):
        return OptimizerState(self.optimizer, self.step,
                              {k: _aligned.copy(b) for k, b in self.buffers.items()})

    def restore(self, other):
        """Take ``other``'s values (a copy made earlier), keeping these buffers' identity."""
        self.step = other.step
        for k, b in self.buffers.items():
            b[...] = other.buffers[k]

    def matches(self, n_params, dtype):
        return set(self.buffers) == set(self.optimizer.buffers) and all(
            b.shape == (n_params,) and b.dtype == np.dtype(dtype) and b.flags.c_contiguous
            and b.flags.writeable for b in self.buffers.values())

    def __repr__(self):
        return f"OptimizerState({self.optimizer!r}, step={self.step})"


__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "Adam", "OPTIMIZERS", "get_optimizer",
           "optimizer_from_dict", "OptimizerState", "adam_scalars", "flush_subnormals"]
