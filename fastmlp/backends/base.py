"""The interface every backend implements.

A backend is stateless arithmetic on a ``params`` dict (``W1 (d_h, d)``, ``b1 (d_h,)``,
``W2 (m, d_h)``, ``b2 (m,)``, all one float dtype) and on inputs already validated and
converted to that dtype by the public wrappers (:mod:`fastmlp.training`,
:func:`fastmlp.gradients`). Penalties come as ``l1=(lambda_11, lambda_21)`` and
``l2=(lambda_12, lambda_22)``: one coefficient per weight matrix.

Three methods are required:

``logits(params, X)``
    the output pre-activations ``o_a``, shape ``(n, m)``;
``loss_and_grads(params, X, y, l1, l2, wrt_input)``
    the minibatch objective ``J`` of the spec and its gradients;
``train_steps(params, X, y, order, batch_size, lr, l1, l2)``
    minibatch SGD in place over the examples ``order`` (a slice of an epoch's shuffled
    order that starts on a minibatch boundary).

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
    """Loss, gradients, training and prediction for the one-hidden-layer MLP."""

    #: the registry name ("loop", "numpy", "numba")
    name: str = ""

    @abstractmethod
    def logits(self, params, X):
        """Output pre-activations ``o_a = W2 relu(W1 x + b1) + b2`` for every row of X, ``(n, m)``."""

    @abstractmethod
    def loss_and_grads(self, params, X, y, l1=(0.0, 0.0), l2=(0.0, 0.0), wrt_input=False):
        """Minibatch objective and its gradients.

        Returns ``(J, grads)``: ``J`` (a Python float) is the mean cross-entropy over the K
        rows plus ``l1[i]*|Wi|_1 + l2[i]*||Wi||^2``; ``grads`` maps every key of ``params``
        (and ``"X"``, shape ``(K, d)``, when ``wrt_input``) to dJ/d(that), in the params' dtype.
        """

    @abstractmethod
    def train_steps(self, params, X, y, order, batch_size, lr, l1=(0.0, 0.0), l2=(0.0, 0.0)):
        """Run SGD on consecutive minibatches ``order[i:i+batch_size]``, updating ``params`` in place.

        Each step: forward on the gathered minibatch, gradients of J (mean plus penalties),
        then ``p -= lr * grad`` for every parameter. Returns :class:`StepStats`.
        """

    def predict_proba(self, params, X):
        """Softmax of the logits, ``(n, m)``, rows sum to 1."""
        out = np.empty((X.shape[0], params["b2"].shape[0]), dtype=X.dtype)
        for start in range(0, X.shape[0], EVAL_CHUNK):
            out[start:start + EVAL_CHUNK] = ops.softmax(self.logits(params, X[start:start + EVAL_CHUNK]))
        return out

    def evaluate(self, params, X, y):
        """``(loss_sum, n_errors)``: summed cross-entropy (float) and misclassified count (int)."""
        loss_sum, n_errors = 0.0, 0
        for start in range(0, X.shape[0], EVAL_CHUNK):
            logits = self.logits(params, X[start:start + EVAL_CHUNK])
            yy = y[start:start + EVAL_CHUNK]
            loss_sum += float(ops.cross_entropy(logits, yy).sum(dtype=np.float64))
            n_errors += int((logits.argmax(axis=1) != yy).sum())
        return loss_sum, n_errors

    def __repr__(self):
        return f"<fastmlp backend {self.name!r}>"
