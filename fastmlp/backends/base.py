"""The interface every backend implements.

A backend is stateless arithmetic on a model (a :class:`fastmlp.MLP`: its layers, hidden
activations, penalties and flat parameter buffer ``model.theta``) and on inputs already
validated and converted to the model's dtype by the public wrappers (:mod:`fastmlp.training`,
:meth:`fastmlp.MLP.predict`). Three methods are required:

``logits(model, X)``
    the output pre-activations ``o_a = a^L``, shape ``(n, m)``;
``loss_and_grads(model, X, y, wrt_input)``
    the minibatch objective ``J`` of the spec and its gradient, as a flat buffer laid out
    like ``model.theta`` (and dJ/dX);
``train_steps(model, X, y, order, batch_size, lr, state)``
    minibatch training in place over the examples ``order`` (a slice of an epoch's shuffled
    order that starts on a minibatch boundary), each step taken by ``state.optimizer``
    (:mod:`fastmlp.optim`), which advances ``state``.

``predict_proba`` and ``evaluate`` have NumPy defaults built on ``logits``.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from .. import ops

#: Rows evaluated at a time by the default ``evaluate``/``predict_proba`` (bounds memory).
EVAL_CHUNK = 8192


_blas = None


def single_threaded_blas(method):
    """Run ``method`` with the BLAS library limited to one thread.

    Two reasons. Reproducibility: a multi-threaded OpenBLAS splits a product differently
    with another thread count, so the same seed would give other bits on another machine
    (tests/test_reproducibility.py fails without this). Speed: our products are small (a
    minibatch of 32 by 784 by 64); threads add little on a quiet machine and, spinning, cost
    5-20x on a busy one (measured on a loaded 2-core machine). The limit costs about 35
    microseconds per call.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        global _blas
        if _blas is None:
            from threadpoolctl import ThreadpoolController

            _blas = ThreadpoolController()
        with _blas.limit(limits=1, user_api="blas"):
            return method(*args, **kwargs)

    return wrapper


class StepStats(NamedTuple):
    """What one ``train_steps`` call reports.

    loss_sum : sum over the examples seen of the cross-entropy (before each step's update)
    n_errors : how many of those examples were misclassified
    n_steps : minibatches completed (weights updated)
    failed_step : index (within this call) of the first minibatch whose loss was not
        finite, where the call stopped without updating; -1 when all went well
    """

    loss_sum: float
    n_errors: int
    n_steps: int
    failed_step: int = -1


class Backend(ABC):
    """Loss, gradients, training and prediction for an MLP of any depth."""

    #: the registry name ("loop", "numpy", "numba")
    name: str = ""

    @abstractmethod
    def logits(self, model, X):
        """Output pre-activations ``o_a = a^L`` for every row of X, ``(n, m)``."""

    @abstractmethod
    def loss_and_grads(self, model, X, y, wrt_input=False):
        """Minibatch objective and its gradient.

        Returns ``(J, grad, dX)``: ``J`` (a Python float) is the mean cross-entropy over the
        K rows plus ``Σ_l l1_l |W_l|_1 + l2_l ||W_l||^2``; ``grad`` is dJ/dθ, a flat buffer
        laid out like ``model.theta`` (``model.layout.views(grad)`` names its parts); ``dX``
        is dJ/dX ``(K, d)`` when ``wrt_input``, else None. All in the model's dtype.
        """

    @abstractmethod
    def train_steps(self, model, X, y, order, batch_size, lr, state):
        """Train on consecutive minibatches ``order[i:i+batch_size]``, updating ``model.theta``
        in place.

        Each step: forward on the gathered minibatch, the gradient g of J (mean plus
        penalties), then one update by ``state.optimizer`` with learning rate ``lr``, which
        advances ``state`` (its step count and buffers). A step whose loss is not finite is
        not taken: the call stops there. Returns :class:`StepStats`.
        """

    def prepare(self, dtype, batch_size, with_evaluation=True, announce=None):
        """Make ready what ``train_steps`` (and ``evaluate``) will need for this dtype and
        batch size -- compile or load kernels -- before the first epoch, so that it is never
        counted as training time; ``announce(message)`` is called first when it will take a
        while. Returns the seconds spent (nothing to do here)."""
        return 0.0

    def predict_proba(self, model, X):
        """Softmax of the logits, ``(n, m)``, rows sum to 1."""
        out = np.empty((X.shape[0], model.n_classes), dtype=X.dtype)
        for start in range(0, X.shape[0], EVAL_CHUNK):
            out[start:start + EVAL_CHUNK] = ops.softmax(self.logits(model, X[start:start + EVAL_CHUNK]))
        return out

    def evaluate(self, model, X, y):
        """``(loss_sum, n_errors)``: summed cross-entropy (float) and misclassified count (int)."""
        loss_sum, n_errors = 0.0, 0
        for start in range(0, X.shape[0], EVAL_CHUNK):
            logits = self.logits(model, X[start:start + EVAL_CHUNK])
            yy = y[start:start + EVAL_CHUNK]
            loss_sum += float(ops.cross_entropy(logits, yy).sum(dtype=np.float64))
            n_errors += int((logits.argmax(axis=1) != yy).sum())
        return loss_sum, n_errors

    def __repr__(self):
        return f"<fastmlp backend {self.name!r}>"
